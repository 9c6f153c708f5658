package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"coffer"
	"coffer/api"
	"coffer/client"
	"coffer/format"
	"coffer/internal/testenv"
)

func TestContactsPinVerifyAndKeyChange(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t)
	alice := env.Client(t, "alice")
	bob := env.Client(t, "bob")
	bobFP := bob.Whoami().Fingerprint

	// Yourself: your own fingerprint, verified.
	me, err := alice.Contact(ctx, "alice")
	if err != nil || !me.Verified || me.Fingerprint != alice.Whoami().Fingerprint {
		t.Fatalf("own contact: %+v %v", me, err)
	}
	// First sight pins bob, unverified.
	ct, err := alice.Contact(ctx, "bob")
	if err != nil || ct.Verified || ct.Fingerprint != bobFP {
		t.Fatalf("first sight: %+v %v", ct, err)
	}
	if _, err := alice.Contact(ctx, "nobody"); !errors.Is(err, coffer.ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
	// A wrong fingerprint does not verify; the right one (any spacing) does.
	if _, err := alice.VerifyContact(ctx, "bob", strings.Repeat("1", 40)); !errors.Is(err, coffer.ErrAuth) {
		t.Fatalf("wrong fingerprint: %v", err)
	}
	if _, err := alice.VerifyContact(ctx, "bob", "12345"); !errors.Is(err, coffer.ErrInvalid) {
		t.Fatalf("short fingerprint: %v", err)
	}
	if ct, err = alice.VerifyContact(ctx, "bob", strings.ReplaceAll(bobFP, " ", "-")); err != nil || !ct.Verified {
		t.Fatalf("verify: %+v %v", ct, err)
	}

	// The server swaps bob's key for one it made (self-signed, username bob): refused loudly,
	// before anything could be shared, and the pinned key is unchanged.
	forged := format.NewBundle(coffer.NewAccountID())
	forgedKeys := forged.PublicKeys("bob").Marshal()
	env.SetHook(func(req *http.Request, resp *http.Response) error {
		if strings.HasSuffix(req.URL.Path, "/users/bob/keys") {
			var r api.UserKeysResponse
			b, _ := testenv.ReadBody(resp)
			if err := json.Unmarshal(b, &r); err != nil {
				return err
			}
			r.PublicKeys = forgedKeys
			r.Account = forged.Account
			b, _ = json.Marshal(r)
			testenv.ReplaceBody(resp, b)
		}
		return nil
	})
	_, err = alice.Contact(ctx, "bob")
	var kc *client.KeyChangedError
	if !errors.As(err, &kc) || !errors.Is(err, coffer.ErrAuth) || kc.Pinned != bobFP || !strings.Contains(err.Error(), "HAS CHANGED") {
		t.Fatalf("swapped key: %v", err)
	}
	// Verifying with the old fingerprint does not accept the new key.
	if _, err := alice.VerifyContact(ctx, "bob", bobFP); !errors.Is(err, coffer.ErrAuth) {
		t.Fatalf("verify old fingerprint against a swapped key: %v", err)
	}
	// Keys of another real user served for bob: refused.
	env.Client(t, "carol")
	carol, err := env.Meta.AccountByName(ctx, "carol")
	if err != nil {
		t.Fatal(err)
	}
	env.SetHook(func(req *http.Request, resp *http.Response) error {
		if strings.HasSuffix(req.URL.Path, "/users/bob/keys") {
			b, _ := json.Marshal(api.UserKeysResponse{Account: carol.ID, PublicKeys: carol.PublicKeys})
			testenv.ReplaceBody(resp, b)
		}
		return nil
	})
	if _, err := alice.Contact(ctx, "bob"); !errors.Is(err, coffer.ErrAuth) {
		t.Fatalf("carol's keys for bob: %v", err)
	}
	env.SetHook(nil)
	cs, err := alice.Contacts()
	if err != nil || len(cs) != 1 || cs[0].Fingerprint != bobFP || !cs[0].Verified {
		t.Fatalf("contacts after the attack: %+v %v", cs, err)
	}
	if err := alice.RemoveContact("bob"); err != nil {
		t.Fatal(err)
	}
	if err := alice.RemoveContact("bob"); !errors.Is(err, coffer.ErrNotFound) {
		t.Fatalf("remove twice: %v", err)
	}
}
