package client

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"coffer"
	"coffer/api"
	"coffer/format"
)

// Public links: the owner side (CreateLink, Links, RevokeLink). The visitor side is linkvisit.go.

var (
	// ErrLinkGone is a link the server no longer serves: revoked, expired, out of downloads, or
	// its file or folder deleted. It wraps coffer.ErrNotFound.
	ErrLinkGone = fmt.Errorf("link revoked or expired (or out of downloads): %w", coffer.ErrNotFound)
	// ErrLinkPassword is a refused link proof: a wrong password (or a damaged link secret). It
	// wraps coffer.ErrForbidden.
	ErrLinkPassword = fmt.Errorf("wrong link password: %w", coffer.ErrForbidden)
	// ErrLinkNeedsPassword is returned by OpenLink for a password link when no password was given.
	ErrLinkNeedsPassword = fmt.Errorf("this link needs a password: %w", coffer.ErrInvalid)
)

// LinkOptions tune CreateLink.
type LinkOptions struct {
	// Password, if non-empty, protects the link: opening needs the URL and the password.
	Password []byte
	// Expires, if non-zero, is when the server stops serving the link.
	Expires time.Time
	// MaxDownloads, if positive, is how many times the link can be opened (read links).
	MaxDownloads int64
	// UploadOnly makes a file-request link to a folder: holders of the URL can upload into it
	// (Client.OpenUploadLink) but read nothing. Their files arrive as drops, encrypted to this
	// account's key, which ImportDrops commits into the folder.
	UploadOnly bool
	// MaxUploads, if positive, is how many files and folders an upload-only link accepts.
	MaxUploads int64
}

// LinkInfo describes one of the account's links. The URL (with its secret) exists only in the
// result of CreateLink: the secret is never stored anywhere but in the URL.
type LinkInfo struct {
	ID           string // base64url link ID, as in the URL's path
	URL          string // only set by CreateLink
	Node         coffer.NodeID
	IsDir        bool
	Password     bool
	Created      time.Time
	Expires      time.Time // zero: never
	MaxDownloads int64     // 0: unlimited
	Downloads    int64
	Revoked      bool
	UploadOnly   bool
	MaxUploads   int64 // 0: unlimited
	Uploads      int64
}

// linkOrigin is the server part of link URLs: the configured server URL.
func (c *Client) linkOrigin() string { return c.http.base }

// CreateLink creates a public link to the file or folder at path and returns it with its URL
// https://HOST/s/<id>#<secret>. The secret (and the password) never leave this machine: the
// server receives the signed link record (the node key wrapped under a link key wrapped under a
// key derived from the secret and the password) and the LinkAuth public key visitors prove
// knowledge of.
func (c *Client) CreateLink(ctx context.Context, path string, opts LinkOptions) (*LinkInfo, error) {
	if opts.MaxDownloads < 0 || opts.MaxUploads < 0 {
		return nil, fmt.Errorf("client: link: negative download or upload limit: %w", coffer.ErrInvalid)
	}
	if opts.UploadOnly && opts.MaxDownloads > 0 || !opts.UploadOnly && opts.MaxUploads > 0 {
		return nil, fmt.Errorf("client: link: a download limit is for read links, an upload limit for upload-only links: %w", coffer.ErrInvalid)
	}
	if !opts.Expires.IsZero() && !opts.Expires.After(time.Now()) {
		return nil, fmt.Errorf("client: link: expiry %s is in the past: %w", opts.Expires.Format(time.RFC3339), coffer.ErrInvalid)
	}
	if tc, _, err := c.route(ctx, path, false); err != nil || tc != c {
		if err == nil {
			err = fmt.Errorf("client: link %s: links into shared folders are not supported yet: %w", path, coffer.ErrInvalid)
		}
		return nil, err
	}
	var n *node
	var remote string
	err := c.withView(ctx, func(v *view) error {
		loc, err := v.resolve(ctx, c, path)
		if err != nil {
			return err
		}
		n, remote = loc.node, loc.path
		return nil
	})
	if err != nil {
		return nil, err
	}
	id, secret := format.NewLinkID(), format.NewLinkSecret()
	var flags uint8
	var kdf format.KDFParams
	if len(opts.Password) > 0 {
		flags |= format.LinkFlagPassword
		kdf = c.cfg.newKDF()
	}
	keys := format.DeriveLinkKeys(secret, opts.Password, kdf)
	var fl *format.Link
	if opts.UploadOnly {
		if !n.isDir() {
			return nil, fmt.Errorf("client: link %s: an upload-only link needs a folder: %w", remote, coffer.ErrInvalid)
		}
		fl, err = format.SealUploadLink(id, c.tree, n.id(), flags, kdf, keys, c.bundle)
	} else {
		fl, err = format.SealLink(id, c.tree, n.id(), n.rec.Kind, flags, kdf, keys, n.key, c.signer)
	}
	if err != nil {
		return nil, fmt.Errorf("client: link %s: %w", remote, err)
	}
	req := api.LinkCreateRequest{Record: fl.Marshal(), Verifier: keys.Auth.Public().(ed25519.PublicKey),
		MaxDownloads: opts.MaxDownloads, MaxUploads: opts.MaxUploads}
	if !opts.Expires.IsZero() {
		req.Expires = opts.Expires.Unix()
	}
	var info api.LinkInfo
	if err := c.http.json(ctx, "POST", "/v1/links", req, &info, false, false); err != nil {
		return nil, fmt.Errorf("client: link %s: %w", remote, err)
	}
	li, err := c.linkInfo(info)
	if err != nil {
		return nil, err
	}
	li.URL = format.FormatLinkURL(c.linkOrigin(), id, secret)
	return li, nil
}

// linkInfo checks a served link description: its record parses, is signed by this account and
// names this account's tree.
func (c *Client) linkInfo(info api.LinkInfo) (*LinkInfo, error) {
	fl, err := format.ParseLink(info.Record)
	if err == nil {
		err = fl.VerifySignature()
	}
	if err == nil && (fl.Owner != c.signPub || fl.Tree != c.tree || hex.EncodeToString(fl.ID[:]) != info.ID) {
		err = fmt.Errorf("link record of another account or link: %w", coffer.ErrAuth)
	}
	if err != nil {
		return nil, fmt.Errorf("client: link %s: %w", info.ID, err)
	}
	li := &LinkInfo{
		ID: base64.RawURLEncoding.EncodeToString(fl.ID[:]), Node: fl.Node, IsDir: fl.Kind == format.KindFolder,
		Password: fl.Flags&format.LinkFlagPassword != 0, Created: time.Unix(info.Created, 0),
		MaxDownloads: info.MaxDownloads, Downloads: info.Downloads, Revoked: info.Revoked,
		UploadOnly: fl.UploadOnly(), MaxUploads: info.MaxUploads, Uploads: info.Uploads,
	}
	if info.Expires != 0 {
		li.Expires = time.Unix(info.Expires, 0)
	}
	return li, nil
}

// Links lists the account's links, newest first (revoked ones included).
func (c *Client) Links(ctx context.Context) ([]*LinkInfo, error) {
	var resp api.LinksResponse
	if err := c.http.json(ctx, "GET", "/v1/links", nil, &resp, true, false); err != nil {
		return nil, fmt.Errorf("client: links: %w", err)
	}
	out := make([]*LinkInfo, 0, len(resp.Links))
	for _, info := range resp.Links {
		li, err := c.linkInfo(info)
		if err != nil {
			return nil, err
		}
		out = append(out, li)
	}
	return out, nil
}

// parseLinkRef accepts a link URL, its base64url ID or the 32-hex-digit ID.
func parseLinkRef(ref string) (format.LinkID, error) {
	var id format.LinkID
	if strings.Contains(ref, "/s/") {
		_, lid, _, err := format.ParseLinkURL(ref)
		return lid, err
	}
	if b, err := hex.DecodeString(ref); err == nil && len(b) == len(id) {
		copy(id[:], b)
		return id, nil
	}
	if b, err := base64.RawURLEncoding.Strict().DecodeString(ref); err == nil && len(b) == len(id) {
		copy(id[:], b)
		return id, nil
	}
	return id, fmt.Errorf("client: link %q: want a link URL or ID: %w", ref, coffer.ErrInvalid)
}

// RevokeLink revokes one of the account's links, named by its URL or ID. The server refuses the
// old URL from then on.
func (c *Client) RevokeLink(ctx context.Context, ref string) error {
	id, err := parseLinkRef(ref)
	if err != nil {
		return err
	}
	if err := c.http.json(ctx, "DELETE", "/v1/links/"+hex.EncodeToString(id[:]), nil, nil, true, false); err != nil {
		return fmt.Errorf("client: revoke link: %w", err)
	}
	return nil
}

// linkError maps the server's answers about a link to the link sentinels.
func linkError(err error) error {
	var se *ServerError
	if errors.As(err, &se) {
		switch {
		case se.Code == api.CodeGone && se.Message != "" && !strings.HasPrefix(se.Message, "link revoked"):
			return fmt.Errorf("%w: %s", ErrLinkGone, se.Message)
		case se.Code == api.CodeGone:
			return ErrLinkGone
		case se.Code == api.CodeLoginFailed:
			return ErrLinkPassword
		case se.Code == api.CodeUnauthorized || (se.Code == "" && se.Status == http.StatusUnauthorized):
			return fmt.Errorf("link access expired, open the link again: %w", coffer.ErrForbidden)
		}
	}
	return err
}
