package api_test

// FuzzWireTypes decodes arbitrary JSON into every wire type (the IDs inside go through the
// coffer ID parsers) and checks that whatever decodes re-encodes to a value that decodes to the
// same thing: no panic, no lossy or non-canonical ID parsing.

import (
	"encoding/json"
	"strings"
	"testing"

	"coffer"
	"coffer/api"
)

func wireTypes() []func() any {
	return []func() any{
		func() any { return new(api.Error) }, func() any { return new(api.SignupRequest) },
		func() any { return new(api.PreloginRequest) }, func() any { return new(api.PreloginResponse) },
		func() any { return new(api.LoginRequest) }, func() any { return new(api.LoginResponse) },
		func() any { return new(api.AccountInfo) }, func() any { return new(api.PasswordRequest) },
		func() any { return new(api.SessionInfo) }, func() any { return new(api.HeadInfo) },
		func() any { return new(api.CommitRequest) }, func() any { return new(api.CommitResponse) },
		func() any { return new(api.VersionsResponse) }, func() any { return new(api.BlobsRequest) },
		func() any { return new(api.BlobsResponse) }, func() any { return new(api.BlobPutResponse) },
		func() any { return new(api.ChangesResponse) }, func() any { return new(api.ChangeEvent) },
		func() any { return new(api.UserKeysResponse) }, func() any { return new(api.UsageResponse) },
		func() any { return new(api.ShareCreateRequest) }, func() any { return new(api.RosterResponse) },
		func() any { return new(api.RosterUpdateRequest) }, func() any { return new(api.RosterUpdateResponse) },
		func() any { return new(api.InvitesResponse) }, func() any { return new(api.InviteAcceptRequest) },
		func() any { return new(api.SharesResponse) },
		func() any { return new(api.SeenRequest) }, func() any { return new(api.SeenResponse) }, // heads.go
	}
}

func FuzzWireTypes(f *testing.F) {
	id16 := strings.Repeat("0a", 16)
	id32 := strings.Repeat("ff", 32)
	for _, s := range []string{
		`{"code":"conflict","message":"x","current":{"tree":"` + id16 + `","version":2,"head":"AAEC"}}`,
		`{"blobs":["` + id32 + `"]}`,
		`{"changes":[{"seq":1,"tree":"` + id16 + `","version":1,"head":"","ops":[{"node":"` + id16 + `","parent":"` + id16 + `","hash":"AA==","tombstone":true}]}],"latest":1,"more":false}`,
		`{"account":"` + id16 + `","kdf":{"time":3,"memory_kib":65536,"threads":1,"salt":"AAAAAAAAAAAAAAAAAAAAAA=="},"challenge":"AA=="}`,
		`{"account":"` + strings.ToUpper(id16) + `"}`,
		`{"blob":"` + id32[:63] + `"}`,
		`{"base_version":1,"head":"AA==","records":[{"record":"AA==","blobs":["` + id32 + `"]}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, mk := range wireTypes() {
			v := mk()
			if json.Unmarshal(data, v) != nil {
				continue
			}
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("%T: re-encode: %v", v, err)
			}
			w := mk()
			if err := json.Unmarshal(b, w); err != nil {
				t.Fatalf("%T: re-decode of %s: %v", v, b, err)
			}
			// nil and empty slices may differ (omitempty); the encoding must be a fixed point.
			if b2, _ := json.Marshal(w); string(b2) != string(b) {
				t.Fatalf("%T: round trip changed the value:\n%s\n%s", v, b, b2)
			}
		}
	})
}

// FuzzParseIDs checks the ID parsers the API relies on: what parses is canonical lowercase hex
// of the right length and formats back to the input, case-folded.
func FuzzParseIDs(f *testing.F) {
	for _, s := range []string{strings.Repeat("0", 32), strings.Repeat("A", 32), strings.Repeat("f", 64), "xyz", "", strings.Repeat("0", 31) + "g"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if id, err := coffer.ParseNodeID(s); err == nil && id.String() != strings.ToLower(s) {
			t.Fatalf("node %q -> %s", s, id)
		}
		if id, err := coffer.ParseTreeID(s); err == nil && id.String() != strings.ToLower(s) {
			t.Fatalf("tree %q -> %s", s, id)
		}
		if id, err := coffer.ParseAccountID(s); err == nil && id.String() != strings.ToLower(s) {
			t.Fatalf("account %q -> %s", s, id)
		}
		if id, err := coffer.ParseBlobID(s); err == nil && id.String() != strings.ToLower(s) {
			t.Fatalf("blob %q -> %s", s, id)
		}
		if api.StatusOf(api.Code(s)) < 400 {
			t.Fatalf("StatusOf(%q) < 400", s)
		}
	})
}
