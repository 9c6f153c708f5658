package client

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"coffer"
	"coffer/api"
	"coffer/format"
)

// LinkOpenOptions tune OpenLink.
type LinkOpenOptions struct {
	// Password is called only for a password link, to get the password. Nil: a password link
	// fails with ErrLinkNeedsPassword.
	Password func() ([]byte, error)
}

// Link is an opened public link: read access, without an account, to one file or one folder's
// subtree. Paths are relative to the linked node: "/" is the linked file or folder itself.
//
// Verification: the link record must be signed by its owner key and name the link ID of the URL;
// the owner's self-signed public keys must carry that key; the node key must unwrap under the
// URL's secret (and password); the linked node's record must be that node, of the linked kind,
// authored and signed by the owner, and decrypt under the node key. Folder listings are verified
// as for own files (head signed by the owner key, state root, folder roots) and files chunk by
// chunk and by their whole-content hash. With Config.StateDir set, the last verified head is
// remembered per link and an older one is refused (coffer.ErrRollback); without it a visitor
// cannot detect a server replaying an older state of the tree.
type Link struct {
	c     *Client // a visitor client: link-gated transport, owner key as writer, state in memory
	owner string
	fl    *format.Link
	root  *node
}

// linkTransport sends the link-gated reads: it rewrites the account routes the listing and
// download code uses (/v1/trees/..., /v1/blobs/...) to the link's routes and refuses any other
// request, so nothing but link reads leaves a visitor client.
type linkTransport struct {
	base     http.RoundTripper
	basePath string // the server URL's path prefix
	link     string // hex link ID
}

func (t *linkTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	p := strings.TrimPrefix(req.URL.Path, t.basePath)
	var rest string
	switch {
	case req.Method == http.MethodGet && strings.HasPrefix(p, "/v1/trees/"):
		rest = strings.TrimPrefix(p, "/v1")
	case req.Method == http.MethodGet && strings.HasPrefix(p, "/v1/blobs/"):
		rest = strings.TrimPrefix(p, "/v1")
	default:
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("client: link visitor: request %s %s not allowed: %w", req.Method, p, coffer.ErrInvalid)
	}
	r2 := req.Clone(req.Context())
	r2.URL.Path = t.basePath + "/v1/links/" + t.link + rest
	r2.URL.RawPath = ""
	return t.base.RoundTrip(r2)
}

// ErrLinkUploadOnly is returned by OpenLink for an upload-only (file-request) link, which gives no
// read access, and by OpenUploadLink for a read link. It wraps coffer.ErrInvalid.
var ErrLinkUploadOnly = fmt.Errorf("an upload-only link gives no read access (upload into it with put), and only an upload-only link accepts uploads: %w", coffer.ErrInvalid)

// linkProof is an opened link: the server's answer to a successful proof.
type linkProof struct {
	cfg    Config
	server string
	id     format.LinkID
	hexID  string
	hc     *http.Client
	keys   *format.LinkKeys
	resp   api.LinkOpenResponse
}

// proveLink runs the challenge and the proof of knowledge of the URL's secret (and password)
// for a read link (upload false) or an upload-only link (upload true).
func proveLink(ctx context.Context, cfg Config, url string, opts LinkOpenOptions, upload bool) (*linkProof, error) {
	cfg = cfg.withDefaults()
	server, id, secret, err := format.ParseLinkURL(url)
	if err != nil {
		return nil, fmt.Errorf("client: link: %w", err)
	}
	hexID := hex.EncodeToString(id[:])
	hc := cfg.HTTPClient
	if hc == nil {
		hc = defaultHTTPClient()
	}
	plain, err := newTransport(server, hc, cfg.Logger)
	if err != nil {
		return nil, err
	}
	var ch api.LinkChallengeResponse
	if err := plain.json(ctx, "POST", "/v1/links/"+hexID+"/challenge", nil, &ch, true, true); err != nil {
		return nil, fmt.Errorf("client: open link: %w", linkError(err))
	}
	if (ch.Flags&format.LinkFlagUploadOnly != 0) != upload {
		return nil, fmt.Errorf("client: open link: %w", ErrLinkUploadOnly)
	}
	var password []byte
	var kdf format.KDFParams
	if ch.Flags&format.LinkFlagPassword != 0 {
		if ch.KDF == nil {
			return nil, fmt.Errorf("client: open link: password link without KDF parameters: %w", coffer.ErrCorrupt)
		}
		if kdf, err = kdfFromAPI(*ch.KDF, cfg.MinKDF); err != nil {
			return nil, fmt.Errorf("client: open link: %w", err)
		}
		if opts.Password == nil {
			return nil, ErrLinkNeedsPassword
		}
		if password, err = opts.Password(); err != nil {
			return nil, err
		}
		if len(password) == 0 {
			return nil, ErrLinkNeedsPassword
		}
	}
	if len(ch.Challenge) != 32 {
		return nil, fmt.Errorf("client: open link: challenge of %d bytes: %w", len(ch.Challenge), coffer.ErrCorrupt)
	}
	keys := format.DeriveLinkKeys(secret, password, kdf)
	sig := ed25519.Sign(keys.Auth, format.LinkAuthMessage(id, [32]byte(ch.Challenge)))
	p := &linkProof{cfg: cfg, server: server, id: id, hexID: hexID, hc: hc, keys: keys}
	if err := plain.json(ctx, "POST", "/v1/links/"+hexID+"/open",
		api.LinkOpenRequest{Challenge: ch.Challenge, Signature: sig}, &p.resp, false, true); err != nil {
		return nil, fmt.Errorf("client: open link: %w", linkError(err))
	}
	return p, nil
}

// OpenLink opens a link URL (https://HOST/s/<id>#<secret>) anonymously: it proves knowledge of
// the secret (and password) to the server, which counts one download, and verifies what it gets.
// cfg.Server is ignored (the URL names the server); cfg.StateDir, if set, keeps the last verified
// head of each visited link (no session, keys or secrets are stored). An upload-only link is
// ErrLinkUploadOnly (see OpenUploadLink).
func OpenLink(ctx context.Context, cfg Config, url string, opts LinkOpenOptions) (*Link, error) {
	p, err := proveLink(ctx, cfg, url, opts, false)
	if err != nil {
		return nil, err
	}
	cfg, server, id, hexID, hc, resp := p.cfg, p.server, p.id, p.hexID, p.hc, p.resp
	l, err := verifyOpenedLink(&resp, id, p.keys)
	if err != nil {
		return nil, fmt.Errorf("client: open link: %w", err)
	}

	// The visitor client: the link-gated transport with the access token, the owner's key as
	// the only accepted writer, state in memory only.
	rt := hc.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	lhc := *hc
	basePath := strings.TrimPrefix(server, "https://")
	basePath = strings.TrimPrefix(basePath, "http://")
	if i := strings.IndexByte(basePath, '/'); i >= 0 {
		basePath = basePath[i:]
	} else {
		basePath = ""
	}
	lhc.Transport = &linkTransport{base: rt, basePath: basePath, link: hexID}
	tr, err := newTransport(server, &lhc, cfg.Logger)
	if err != nil {
		return nil, err
	}
	tr.setToken(resp.Token)
	// With a state directory, the last verified head of the link's tree is remembered per link
	// (StateDir/links/accounts/<link id>/state.json), so a later visit detects a rollback.
	stateDir := ""
	if cfg.StateDir != "" {
		stateDir = filepath.Join(cfg.StateDir, "links")
	}
	st, err := openState(stateDir, coffer.AccountID(id))
	if err != nil {
		return nil, err
	}
	cfg.StateDir = ""
	l.c = &Client{cfg: cfg, log: cfg.Logger, http: tr, tree: l.fl.Tree, signPub: l.fl.Owner, state: st, treeCache: &treeCache{}}
	return l, nil
}

// verifyOpenedLink checks the server's answer to an open (see Link).
func verifyOpenedLink(resp *api.LinkOpenResponse, id format.LinkID, keys *format.LinkKeys) (*Link, error) {
	fl, err := format.ParseLink(resp.Record)
	if err != nil {
		return nil, err
	}
	if fl.ID != id {
		return nil, fmt.Errorf("the server sent the record of another link: %w", coffer.ErrAuth)
	}
	if err := fl.VerifySignature(); err != nil {
		return nil, err
	}
	pk, err := format.ParsePublicKeys(resp.OwnerPublicKeys)
	if err != nil {
		return nil, fmt.Errorf("owner keys: %w", err)
	}
	if !pk.Signing.Equal(ed25519.PublicKey(fl.Owner[:])) || pk.Username != resp.Owner {
		return nil, fmt.Errorf("the owner's keys do not match the link record: %w", coffer.ErrAuth)
	}
	nk, err := fl.OpenNodeKey(keys)
	if err != nil {
		return nil, err
	}
	rec, err := format.ParseRecord(resp.Node)
	if err != nil {
		return nil, err
	}
	switch {
	case rec.Node != fl.Node || rec.Kind != fl.Kind:
		return nil, fmt.Errorf("the server sent another node than the linked one: %w", coffer.ErrAuth)
	case rec.Author != fl.Owner:
		return nil, fmt.Errorf("the linked node has a foreign author: %w", coffer.ErrAuth)
	}
	if err := rec.VerifySignature(); err != nil {
		return nil, err
	}
	body, err := rec.OpenBody(nk)
	if err != nil {
		return nil, err
	}
	return &Link{owner: pk.Username, fl: fl, root: &node{rec: headerOf(rec), hash: sha256.Sum256(resp.Node), key: nk, body: body}}, nil
}

// Owner is the username of the link's owner (as signed in the owner's public keys).
func (l *Link) Owner() string { return l.owner }

// IsDir reports whether the link is to a folder.
func (l *Link) IsDir() bool { return l.root.isDir() }

// Name is the linked file's or folder's name.
func (l *Link) Name() string {
	if l.root.body.Role == format.RoleRoot {
		return "shared"
	}
	return l.root.body.Name
}

// Root returns the linked node's entry (Path "/").
func (l *Link) Root() *Entry {
	e := entryOf("/", l.root)
	e.Name = l.Name()
	return e
}

// view returns a verified view of the linked subtree at the tree's current head (file links:
// a view holding just the file).
func (l *Link) view(ctx context.Context) (*view, error) {
	top := newFolder(l.root.rec.Parent, format.WrapKey{}, []*node{l.root}, false)
	if !l.root.isDir() {
		v := newView(nil, [32]byte{}, nil)
		v.root, v.top = l.root, top
		return v, nil
	}
	const what = "/"
	raw, err := l.c.fetchListing(ctx, l.root.id(), what, nil)
	if err != nil {
		return nil, linkError(err)
	}
	h, hash, err := l.c.verifyHead(ctx, raw.headRaw, raw.seen, what)
	if err != nil {
		return nil, err
	}
	v := newView(h, hash, raw.buckets)
	v.root, v.top = l.root, top
	if _, err := v.verifyRaw(raw, l.root.id(), l.root.childWrap(), true, what); err != nil {
		return nil, err
	}
	return v, nil
}

// withView runs fn on a fresh verified view, restarting when the tree moves underneath.
func (l *Link) withView(ctx context.Context, fn func(v *view) error) error {
	var err error
	for i := 0; i < staleRetries; i++ {
		var v *view
		if v, err = l.view(ctx); err != nil {
			return err
		}
		if err = fn(v); !errors.Is(err, errStale) {
			return linkError(err)
		}
	}
	return fmt.Errorf("client: the linked folder keeps changing, try again: %w", coffer.ErrConflict)
}

// List returns a folder's children sorted by name (a file returns itself).
func (l *Link) List(ctx context.Context, path string) ([]*Entry, error) {
	var out []*Entry
	err := l.withView(ctx, func(v *view) error {
		out = nil
		loc, err := v.resolve(ctx, l.c, path)
		if err != nil {
			return err
		}
		if !loc.node.isDir() {
			out = []*Entry{l.entry(loc.path, loc.node)}
			return nil
		}
		f, err := v.list(ctx, l.c, loc.node, loc.path)
		if err != nil {
			return err
		}
		for _, n := range sortedByName(f) {
			out = append(out, entryOf(joinRemote(loc.path, n.body.Name), n))
		}
		return nil
	})
	return out, err
}

// Walk calls fn for path and everything below it, parents first (fs.SkipDir and fs.SkipAll work
// as for Client.Walk).
func (l *Link) Walk(ctx context.Context, path string, fn func(*Entry) error) error {
	var all []walked
	err := l.withView(ctx, func(v *view) error {
		loc, err := v.resolve(ctx, l.c, path)
		if err != nil {
			return err
		}
		all, err = v.collect(ctx, l.c, loc)
		return err
	})
	if err != nil {
		return err
	}
	for _, w := range all {
		if w.n == l.root {
			w.e.Name = l.Name()
		}
		if err := fn(w.e); err != nil {
			return err
		}
	}
	return nil
}

func (l *Link) entry(p string, n *node) *Entry {
	e := entryOf(p, n)
	if n == l.root {
		e.Name = l.Name()
	}
	return e
}

// Download copies the linked file or folder (remote "/"), or a path inside a folder link, to
// local with cp semantics: into local if it is an existing folder, else as local. Everything is
// verified before it is visible under its final name (see Client.Download).
func (l *Link) Download(ctx context.Context, remote, local string, opts TransferOptions) (TransferResult, error) {
	var plan *dlPlan
	err := l.withView(ctx, func(v *view) error {
		target := local
		if p, err := cleanRemote(remote); err == nil && p == "/" {
			// The linked node has a name (unlike an account's root): cp puts it inside a folder.
			if st, err := os.Stat(local); err == nil && st.IsDir() {
				name := l.Name()
				if err := safeLocalName(name); err != nil {
					return fmt.Errorf("client: download %s: %w", name, err)
				}
				target = filepath.Join(local, name)
			}
		}
		var err error
		plan, err = l.c.planDownload(ctx, v, []string{remote}, target, opts)
		return err
	})
	if err != nil {
		return TransferResult{}, err
	}
	res := TransferResult{Folders: plan.folders, Skipped: plan.skipped}
	for _, d := range plan.dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return res, fmt.Errorf("client: download: %w", err)
		}
	}
	d := &downloader{c: l.c, opts: opts}
	err = d.run(ctx, plan.files)
	res.Files, res.Bytes = d.files, d.bytes
	return res, linkError(err)
}

// Cat writes a linked file's verified plaintext to w (path "/" for a file link).
func (l *Link) Cat(ctx context.Context, path string, w io.Writer) error {
	var n *node
	var remote string
	err := l.withView(ctx, func(v *view) error {
		loc, err := v.resolve(ctx, l.c, path)
		if err != nil {
			return err
		}
		if loc.node.isDir() {
			return fmt.Errorf("client: cat %s: is a folder: %w", loc.path, coffer.ErrInvalid)
		}
		n, remote = loc.node, loc.path
		return nil
	})
	if err != nil {
		return err
	}
	ct := n.body.Content
	f := &dlFile{remote: remote, n: n, ct: ct, ciph: ct.Key.Cipher(), h: sha256.New()}
	var b unitBuilder
	for i, ch := range ct.Chunks {
		b.chunk(f, uint64(i), ch)
	}
	b.finish(f)
	err = l.c.fetchUnits(ctx, b.units, func(u *dlUnit) error {
		for _, it := range u.items {
			if it.finish {
				if f.written != ct.Size || [32]byte(f.h.Sum(nil)) != ct.Hash {
					return fmt.Errorf("client: cat %s: content does not match its hash: %w", remote, coffer.ErrAuth)
				}
				continue
			}
			f.h.Write(it.plain)
			f.written += uint64(len(it.plain))
			if _, err := w.Write(it.plain); err != nil {
				return fmt.Errorf("client: cat %s: %w", remote, err)
			}
		}
		return nil
	})
	return linkError(err)
}
