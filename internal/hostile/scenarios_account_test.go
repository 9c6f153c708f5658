package hostile

// Scenarios 1-8 of doc/SECURITY.md: accounts, key bundle, master-key envelopes, KDF, login.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"coffer"
	"coffer/api"
	"coffer/client"
	"coffer/format"
	"coffer/internal/testenv"
)

// rewriteLogin rewrites the JSON body of successful login/finish answers.
func rewriteLogin(env *testenv.Env, edit func(*api.LoginResponse)) {
	env.SetHook(func(req *http.Request, resp *http.Response) error {
		if req.URL.Path != "/v1/login/finish" || resp.StatusCode != 200 {
			return nil
		}
		b, _ := testenv.ReadBody(resp)
		var l api.LoginResponse
		if err := json.Unmarshal(b, &l); err != nil {
			return err
		}
		edit(&l)
		nb, _ := json.Marshal(&l)
		testenv.ReplaceBody(resp, nb)
		return nil
	})
}

// loginErr logs user in with a fresh state directory (or state) and returns the error.
func loginErr(env *testenv.Env, user, state string) error {
	c, err := client.Login(context.Background(), env.Config(state), user, testenv.Password(user), "x")
	if err == nil && c == nil {
		return errors.New("nil client without error")
	}
	return err
}

func TestScenario01_OtherAccountsBundle(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	env.Client(t, "alice")
	env.Client(t, "bob")
	bob := captureSecrets(t, env, "bob")
	var bobLogin api.LoginResponse
	json.Unmarshal(bob.loginRaw, &bobLogin)
	cases := map[string]func(*api.LoginResponse){
		"whole account record": func(l *api.LoginResponse) { l.Account = bob.info },
		"bundle only": func(l *api.LoginResponse) {
			l.Account.Bundle, l.Account.BundleGeneration = bob.info.Bundle, bob.info.BundleGeneration
		},
		"bundle and public keys": func(l *api.LoginResponse) {
			l.Account.Bundle, l.Account.PublicKeys = bob.info.Bundle, bob.info.PublicKeys
		},
		"master key envelope": func(l *api.LoginResponse) { l.MasterKey = bobLogin.MasterKey },
		"everything":          func(l *api.LoginResponse) { *l = bobLogin },
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			rewriteLogin(env, edit)
			defer env.SetHook(nil)
			err := loginErr(env, "alice", t.TempDir())
			if !errors.Is(err, coffer.ErrAuth) {
				t.Fatalf("login with bob's %s: %v, want ErrAuth", name, err)
			}
		})
	}
	// Resume re-fetches the account record: bob's must be refused there too.
	state := t.TempDir()
	if err := loginErr(env, "alice", state); err != nil {
		t.Fatal(err)
	}
	env.SetHook(func(req *http.Request, resp *http.Response) error {
		if req.URL.Path == "/v1/account" && resp.StatusCode == 200 {
			b, _ := json.Marshal(bob.info)
			testenv.ReplaceBody(resp, b)
		}
		return nil
	})
	defer env.SetHook(nil)
	if _, err := client.Resume(context.Background(), env.Config(state)); !errors.Is(err, coffer.ErrAuth) {
		t.Fatalf("resume with bob's account record: %v", err)
	}
}

func TestScenario02_FlippedBundleOrEnvelope(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	env.Client(t, "alice")
	env.Client(t, "bob")
	alice := captureSecrets(t, env, "alice")
	bob := captureSecrets(t, env, "bob")
	var aliceLogin api.LoginResponse
	json.Unmarshal(alice.loginRaw, &aliceLogin)
	var msgs []string
	flip := func(b []byte, i int) []byte { b = bytes.Clone(b); b[i] ^= 0x40; return b }
	type attack struct {
		name string
		edit func(*api.LoginResponse)
	}
	var attacks []attack
	// Every byte of the sealed bundle's ciphertext and every byte of the envelope's wrapped key.
	for _, i := range []int{len(aliceLogin.Account.Bundle) - 1, len(aliceLogin.Account.Bundle) / 2, 40} {
		attacks = append(attacks, attack{fmt.Sprintf("bundle byte %d", i), func(l *api.LoginResponse) { l.Account.Bundle = flip(l.Account.Bundle, i) }})
	}
	for _, i := range []int{len(aliceLogin.MasterKey) - 1, len(aliceLogin.MasterKey) - 40} {
		attacks = append(attacks, attack{fmt.Sprintf("envelope byte %d", i), func(l *api.LoginResponse) { l.MasterKey = flip(l.MasterKey, i) }})
	}
	// Spliced: alice's bundle header with bob's ciphertext (and the other way round).
	hdr := len(alice.info.Bundle) - len(bob.info.Bundle[28:]) // header is magic+account+generation
	attacks = append(attacks,
		attack{"spliced bundle", func(l *api.LoginResponse) {
			l.Account.Bundle = append(bytes.Clone(alice.info.Bundle[:28]), bob.info.Bundle[28:]...)
		}},
		attack{"bundle truncated", func(l *api.LoginResponse) { l.Account.Bundle = l.Account.Bundle[:len(l.Account.Bundle)-1] }},
	)
	_ = hdr
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			rewriteLogin(env, a.edit)
			defer env.SetHook(nil)
			err := loginErr(env, "alice", t.TempDir())
			if !isRefusal(err) {
				t.Fatalf("%s: %v, want a refusal", a.name, err)
			}
			if !errors.Is(err, coffer.ErrAuth) && !strings.Contains(a.name, "truncated") {
				t.Fatalf("%s: %v, want ErrAuth", a.name, err)
			}
			msgs = append(msgs, err.Error())
		})
	}
	// No oracle: every ciphertext failure of one object reads the same.
	byObj := map[string]map[string]bool{}
	for i, a := range attacks {
		if i >= len(msgs) || strings.Contains(a.name, "truncated") {
			continue
		}
		obj := strings.Fields(a.name)[0]
		if obj == "spliced" {
			obj = "bundle"
		}
		if byObj[obj] == nil {
			byObj[obj] = map[string]bool{}
		}
		byObj[obj][msgs[i]] = true
	}
	for obj, m := range byObj {
		if len(m) != 1 {
			t.Errorf("%s failures give %d different messages (oracle): %v", obj, len(m), m)
		}
	}
}

// raiseGeneration re-seals the account's bundle at generation gen (as a future key rotation
// would) and stores it with matching public keys.
func raiseGeneration(t *testing.T, env *testenv.Env, s *secrets, user string, gen uint64) {
	t.Helper()
	b := *s.bundle
	b.Generation = gen
	sealed := b.Seal(s.mk)
	pub := b.PublicKeys(user).Marshal()
	db := env.DB(t)
	if _, err := db.Exec("UPDATE accounts SET bundle = ?, bundle_gen = ?, public_keys = ? WHERE id = ?",
		sealed, gen, pub, s.account[:]); err != nil {
		t.Fatal(err)
	}
}

func TestScenario03_OlderBundleGeneration(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	env.Client(t, "alice")
	s := captureSecrets(t, env, "alice")
	raiseGeneration(t, env, s, "alice", 2)
	state := t.TempDir()
	if err := loginErr(env, "alice", state); err != nil {
		t.Fatalf("login at generation 2: %v", err)
	}
	// The server now serves the older, authentic generation-1 bundle and public keys.
	rewriteLogin(env, func(l *api.LoginResponse) {
		l.Account.Bundle, l.Account.BundleGeneration, l.Account.PublicKeys = s.info.Bundle, s.info.BundleGeneration, s.info.PublicKeys
	})
	defer env.SetHook(nil)
	if err := loginErr(env, "alice", state); !errors.Is(err, coffer.ErrRollback) {
		t.Fatalf("generation 1 after 2: %v, want ErrRollback", err)
	}
	// Generation claimed by the server but not sealed in the bundle.
	rewriteLogin(env, func(l *api.LoginResponse) { l.Account.BundleGeneration = 3 })
	if err := loginErr(env, "alice", state); !errors.Is(err, coffer.ErrAuth) {
		t.Fatalf("generation mismatch: %v, want ErrAuth", err)
	}
	// Resume (CLI restart) remembers too.
	env.SetHook(nil)
	st2 := t.TempDir()
	if err := loginErr(env, "alice", st2); err != nil {
		t.Fatal(err)
	}
	env.SetHook(func(req *http.Request, resp *http.Response) error {
		if req.URL.Path == "/v1/account" && resp.StatusCode == 200 {
			b, _ := json.Marshal(s.info)
			testenv.ReplaceBody(resp, b)
		}
		return nil
	})
	if _, err := client.Resume(context.Background(), env.Config(st2)); !errors.Is(err, coffer.ErrRollback) {
		t.Fatalf("resume at generation 1 after 2: %v, want ErrRollback", err)
	}
}

func TestScenario04_PublicKeysReplaced(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	env.Client(t, "alice")
	env.Client(t, "bob")
	alice := captureSecrets(t, env, "alice")
	bob := captureSecrets(t, env, "bob")
	// A self-signed record for alice's account and name, but made by the server's own keys.
	fake := format.NewBundle(alice.account)
	fakePub := fake.PublicKeys("alice").Marshal()
	// Alice's real record with one key byte changed (the self-signature then fails).
	tampered := bytes.Clone(alice.info.PublicKeys)
	tampered[len(tampered)-100] ^= 1
	cases := map[string][]byte{
		"bob's record":         bob.info.PublicKeys,
		"server-made record":   fakePub,
		"tampered record":      tampered,
		"record of other name": format.NewBundle(alice.account).PublicKeys("mallory").Marshal(),
	}
	for name, pub := range cases {
		t.Run(name, func(t *testing.T) {
			rewriteLogin(env, func(l *api.LoginResponse) { l.Account.PublicKeys = pub })
			defer env.SetHook(nil)
			if err := loginErr(env, "alice", t.TempDir()); !isRefusal(err) {
				t.Fatalf("%s: %v, want a refusal", name, err)
			} else if name != "tampered record" && !errors.Is(err, coffer.ErrAuth) {
				t.Fatalf("%s: %v, want ErrAuth", name, err)
			}
		})
	}
	// The tree named by the server must be the bundle's.
	rewriteLogin(env, func(l *api.LoginResponse) { l.Account.Tree = bob.info.Tree })
	defer env.SetHook(nil)
	if err := loginErr(env, "alice", t.TempDir()); !errors.Is(err, coffer.ErrAuth) {
		t.Fatalf("bob's tree: %v", err)
	}
}

func TestScenario05_KDFDowngrade(t *testing.T) {
	env := testenv.New(t)
	env.Client(t, "alice")
	real := captureSecrets(t, env, "alice")
	// A production client (MinKDF zero: format.MinKDF()) against parameters just below each
	// minimum: refused before Argon2id runs, so it returns at once.
	floor := format.MinKDF()
	weak := map[string]api.KDF{
		"time":       {Time: floor.Time - 1, MemoryKiB: floor.MemoryKiB, Threads: 1, Salt: real.kdf.Salt[:]},
		"memory":     {Time: floor.Time, MemoryKiB: floor.MemoryKiB - 1, Threads: 1, Salt: real.kdf.Salt[:]},
		"threads":    {Time: floor.Time, MemoryKiB: floor.MemoryKiB, Threads: 0, Salt: real.kdf.Salt[:]},
		"zero salt":  {Time: floor.Time, MemoryKiB: floor.MemoryKiB, Threads: 1, Salt: make([]byte, 16)},
		"short salt": {Time: floor.Time, MemoryKiB: floor.MemoryKiB, Threads: 1, Salt: real.kdf.Salt[:8]},
		"cheap":      {Time: 1, MemoryKiB: 64, Threads: 1, Salt: real.kdf.Salt[:]},
	}
	for name, k := range weak {
		t.Run(name, func(t *testing.T) {
			env.SetHook(func(req *http.Request, resp *http.Response) error {
				if req.URL.Path != "/v1/login/start" || resp.StatusCode != 200 {
					return nil
				}
				b, _ := testenv.ReadBody(resp)
				var p api.PreloginResponse
				json.Unmarshal(b, &p)
				p.KDF = k
				nb, _ := json.Marshal(&p)
				testenv.ReplaceBody(resp, nb)
				return nil
			})
			defer env.SetHook(nil)
			cfg := env.Config(t.TempDir())
			cfg.MinKDF = format.KDFParams{}
			// The fastest of three attempts (scheduling noise on a loaded machine is not Argon2id).
			el := time.Hour
			for range 3 {
				start := time.Now()
				_, err := client.Login(context.Background(), cfg, "alice", testenv.Password("alice"), "x")
				el = min(el, time.Since(start))
				if err == nil || errors.Is(err, client.ErrLoginFailed) {
					t.Fatalf("weak %s: %v, want a refusal before login", name, err)
				}
			}
			if el > 50*time.Millisecond {
				t.Fatalf("weak %s: refused after %v: Argon2id probably ran", name, el)
			}
		})
	}
	// Another salt or stronger parameters than the envelope binds: the server cannot make the
	// client accept them even if it accepts the login (it answers with the recorded honest
	// login/finish): the envelope does not open.
	for name, k := range map[string]api.KDF{
		"other salt":  {Time: real.kdf.Time, MemoryKiB: real.kdf.MemoryKiB, Threads: 1, Salt: bytes.Repeat([]byte{7}, 16)},
		"more passes": {Time: real.kdf.Time + 1, MemoryKiB: real.kdf.MemoryKiB, Threads: 1, Salt: real.kdf.Salt[:]},
	} {
		t.Run(name, func(t *testing.T) {
			fresh := captureSecrets(t, env, "alice") // a valid session the server replays
			env.SetHook(func(req *http.Request, resp *http.Response) error {
				switch {
				case req.URL.Path == "/v1/login/start" && resp.StatusCode == 200:
					b, _ := testenv.ReadBody(resp)
					var p api.PreloginResponse
					json.Unmarshal(b, &p)
					p.KDF = k
					nb, _ := json.Marshal(&p)
					testenv.ReplaceBody(resp, nb)
				case req.URL.Path == "/v1/login/finish":
					resp.StatusCode, resp.Status = 200, "200 OK"
					testenv.ReplaceBody(resp, fresh.loginRaw)
				}
				return nil
			})
			defer env.SetHook(nil)
			if err := loginErr(env, "alice", t.TempDir()); !errors.Is(err, coffer.ErrAuth) {
				t.Fatalf("%s: %v, want ErrAuth", name, err)
			}
		})
	}
}

func TestScenario06_LegacyVersionClaim(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "alice")
	env := f.env
	relabel := func(b []byte, magic string) []byte { b = bytes.Clone(b); copy(b, magic); return b }
	dID := captureSecrets(t, env, "alice").lookup(t, env, "/d").rec.Node.String()
	// A listing whose head or records claim another format version.
	for _, tc := range []struct {
		name, magic string
		frame       byte
	}{
		{"head CFH0", "CFH0", api.FrameHead}, {"head CFH2", "CFH2", api.FrameHead},
		{"record CFR0", "CFR0", api.FrameRecord}, {"record CFR2", "CFR2", api.FrameRecord},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := f.login(t, f.state)
			env.SetHook(func(req *http.Request, resp *http.Response) error {
				if !isListing(req, resp) || folderOf(req) != dID {
					return nil
				}
				b, _ := testenv.ReadBody(resp)
				fs, _ := splitFrames(b)
				for i := range fs {
					if fs[i].typ == tc.frame {
						fs[i].b = relabel(fs[i].b, tc.magic)
					}
				}
				testenv.ReplaceBody(resp, joinFrames(fs))
				return nil
			})
			defer env.SetHook(nil)
			expectListRefused(t, c, "/d", nil)
			expectDownloadRefused(t, c, "/d/a", nil)
		})
	}
	// The account's envelope and bundle with another version.
	for name, edit := range map[string]func(*api.LoginResponse){
		"envelope CFK0": func(l *api.LoginResponse) { l.MasterKey = relabel(l.MasterKey, "CFK0") },
		"bundle CFB2":   func(l *api.LoginResponse) { l.Account.Bundle = relabel(l.Account.Bundle, "CFB2") },
		"pubkeys CFP0":  func(l *api.LoginResponse) { l.Account.PublicKeys = relabel(l.Account.PublicKeys, "CFP0") },
	} {
		t.Run(name, func(t *testing.T) {
			rewriteLogin(env, edit)
			defer env.SetHook(nil)
			if err := loginErr(env, "alice", t.TempDir()); !isRefusal(err) {
				t.Fatalf("%s: %v, want a refusal", name, err)
			}
		})
	}
}

func TestScenario07_NoPasswordDerivedSecretSent(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	rec := newRecorder()
	cfg := env.Config(t.TempDir())
	cfg.HTTPClient = rec.client()
	ctx := context.Background()
	c, err := client.Signup(ctx, cfg, client.SignupOptions{Username: "alice", Password: testenv.Password("alice"), Device: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Mkdir(ctx, "/x", false); err != nil {
		t.Fatal(err)
	}
	if err := c.ChangePassword(ctx, testenv.Password("alice"), []byte("second password")); err != nil {
		t.Fatal(err)
	}
	cfg2 := env.Config(t.TempDir())
	cfg2.HTTPClient = rec.client()
	c2, err := client.Login(ctx, cfg2, "alice", []byte("second password"), "t2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.LoginRecovery(ctx, cfg2, "alice", c2.RecoveryKey(), []byte("third password"), "t3"); err != nil {
		t.Fatal(err)
	}
	// Every secret: passwords, Argon2id outputs (PK), wrap keys, login private keys, MK, RK,
	// recovery wrap, bundle key material.
	type named struct {
		name string
		b    []byte
	}
	var secretsList []named
	for _, pw := range []string{string(testenv.Password("alice")), "second password", "third password"} {
		secretsList = append(secretsList, named{"password " + pw, []byte(pw)})
	}
	// KDF parameters: every password was set with cheap parameters; recover salts from the
	// recorded requests (signup, passwd, recovery).
	var salts [][]byte
	for _, r := range rec.requests() {
		var v struct {
			KDF *api.KDF `json:"kdf"`
		}
		if json.Unmarshal(r.Body, &v) == nil && v.KDF != nil && len(v.KDF.Salt) == 16 {
			salts = append(salts, v.KDF.Salt)
		}
	}
	if len(salts) < 3 {
		t.Fatalf("found %d KDF salts in requests, want 3", len(salts))
	}
	kdf := testenv.CheapKDF()
	for _, salt := range salts {
		for _, pw := range []string{string(testenv.Password("alice")), "second password", "third password"} {
			pk := argon2.IDKey([]byte(pw), salt, kdf.Time, kdf.MemoryKiB, kdf.Threads, 32)
			secretsList = append(secretsList, named{"PK", pk})
			p := kdf
			p.Salt = [16]byte(salt)
			lk := format.DerivePasswordKeys([]byte(pw), p)
			secretsList = append(secretsList, named{"wrap key", lk.Wrap[:]}, named{"login private key", lk.Login.Seed()})
		}
	}
	mk := c2.RecoveryKey() // RK
	secretsList = append(secretsList, named{"recovery key", mk[:]}, named{"recovery key text", []byte(mk.String())})
	rlk := format.DeriveRecoveryKeys(mk)
	secretsList = append(secretsList, named{"recovery wrap", rlk.Wrap[:]}, named{"recovery login key", rlk.Login.Seed()})
	all := rec.requests()
	if len(all) < 10 {
		t.Fatalf("recorded only %d requests", len(all))
	}
	for _, r := range all {
		hay := append(bytes.Clone(r.Body), []byte(r.Path)...)
		for k, vs := range r.Header {
			if k == "Authorization" {
				continue
			}
			hay = append(hay, strings.Join(vs, " ")...)
		}
		for _, sec := range secretsList {
			for _, enc := range encodings(sec.b) {
				if bytes.Contains(hay, enc) {
					t.Errorf("%s %s carries the %s", r.Method, r.Path, sec.name)
				}
			}
		}
	}
}

// encodings returns b raw, hex (both cases), and base64 (std, URL, raw) forms.
func encodings(b []byte) [][]byte {
	return [][]byte{b,
		[]byte(hex.EncodeToString(b)), []byte(strings.ToUpper(hex.EncodeToString(b))),
		[]byte(base64.StdEncoding.EncodeToString(b)), []byte(base64.RawStdEncoding.EncodeToString(b)),
		[]byte(base64.URLEncoding.EncodeToString(b)), []byte(base64.RawURLEncoding.EncodeToString(b))}
}

func TestScenario08_RepeatedCraftedFailures(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "alice")
	env := f.env
	// 1. Crafted master-key envelopes in a loop: identical error every time, one login attempt
	// per call (no automatic retry), and the account stays usable.
	var mu sync.Mutex
	finishes := 0
	i := 0
	env.SetHook(func(req *http.Request, resp *http.Response) error {
		if req.URL.Path != "/v1/login/finish" || resp.StatusCode != 200 {
			return nil
		}
		mu.Lock()
		finishes++
		i++
		n := i
		mu.Unlock()
		b, _ := testenv.ReadBody(resp)
		var l api.LoginResponse
		json.Unmarshal(b, &l)
		l.MasterKey[len(l.MasterKey)-1-n%40] ^= byte(n)
		nb, _ := json.Marshal(&l)
		testenv.ReplaceBody(resp, nb)
		return nil
	})
	msgs := map[string]int{}
	for k := 0; k < 12; k++ {
		err := loginErr(env, "alice", t.TempDir())
		if !errors.Is(err, coffer.ErrAuth) {
			t.Fatalf("attempt %d: %v", k, err)
		}
		msgs[err.Error()]++
	}
	if len(msgs) != 1 || finishes != 12 {
		t.Fatalf("crafted envelopes: %d messages %v, %d login finishes for 12 attempts", len(msgs), msgs, finishes)
	}
	env.SetHook(nil)
	// 2. Crafted chunks in a loop: every failure of /d/a reads the same, whatever was done to it
	// (flipped tag, flipped ciphertext, swapped chunks, another file's chunk), and each attempt
	// fetches the blob a bounded number of times.
	s := captureSecrets(t, env, "alice")
	a := s.lookup(t, env, "/d/a").body.Content
	b := s.lookup(t, env, "/d/b").body.Content
	bBlob := readBlob(t, env, b.Chunks[0].Blob)
	edits := map[string]func([]byte) []byte{
		"flipped tag":        func(x []byte) []byte { x[int(a.Chunks[0].Offset)+int(a.Chunks[0].Length)-1] ^= 1; return x },
		"flipped ciphertext": func(x []byte) []byte { x[int(a.Chunks[1].Offset)+7] ^= 0x80; return x },
		"swapped chunks": func(x []byte) []byte {
			c0, c1 := a.Chunks[0], a.Chunks[1]
			p := bytes.Clone(x[c0.Offset : c0.Offset+uint64(c0.Length)])
			q := bytes.Clone(x[c1.Offset : c1.Offset+uint64(c1.Length)])
			copy(x[c0.Offset:], q)
			copy(x[c1.Offset:], p)
			return x
		},
		"other file's chunk": func(x []byte) []byte {
			copy(x[a.Chunks[0].Offset:], bBlob[b.Chunks[0].Offset:b.Chunks[0].Offset+uint64(a.Chunks[0].Length)])
			return x
		},
	}
	errText := map[string]string{}
	for name, edit := range edits {
		gets := 0
		hook := blobEdit(env, a.Chunks[0].Blob, func(_ coffer.BlobID, x []byte) []byte { return edit(x) })
		env.SetHook(func(req *http.Request, resp *http.Response) error {
			if isBlobGet(req, resp) {
				mu.Lock()
				gets++
				mu.Unlock()
			}
			return hook(req, resp)
		})
		for k := 0; k < 3; k++ {
			err := expectDownloadRefused(t, f.c, "/d/a", coffer.ErrAuth)
			if prev, ok := errText[name]; ok && prev != err.Error() {
				t.Errorf("%s: message changed between attempts: %q vs %q", name, prev, err.Error())
			}
			errText[name] = err.Error()
		}
		if gets > 3*3 {
			t.Errorf("%s: %d blob fetches for 3 downloads: retrying on authentication failures", name, gets)
		}
		env.SetHook(nil)
	}
	uniq := map[string]bool{}
	for _, m := range errText {
		uniq[normalize(m)] = true
	}
	if len(uniq) != 1 {
		t.Errorf("different decryption failures are distinguishable (oracle): %v", errText)
	}
	// Still usable after all that.
	var out bytes.Buffer
	if err := f.c.Cat(context.Background(), "/d/a", &out); err != nil || !bytes.Equal(out.Bytes(), f.contents["/d/a"]) {
		t.Fatalf("honest cat after attacks: %v", err)
	}
}
