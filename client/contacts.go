package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"coffer"
	"coffer/api"
	"coffer/format"
)

// Contacts: other accounts' public keys, pinned on first sight in the state directory
// (accounts/<account>/contacts.json). The server is never the root of trust for a key: a key
// that differs from the pinned one is a *KeyChangedError (it wraps coffer.ErrAuth) until the user
// compares the new fingerprint out of band and runs VerifyContact with it.

const contactsFile = "contacts.json"

// Contact is a pinned public key record of another account.
type Contact struct {
	Username    string           `json:"username"`
	Account     coffer.AccountID `json:"account"`
	Fingerprint string           `json:"fingerprint"`
	// Verified is set once the user compared Fingerprint out of band (VerifyContact).
	Verified   bool      `json:"verified"`
	Added      time.Time `json:"added"`
	VerifiedAt time.Time `json:"verified_at,omitzero"`
	PublicKeys []byte    `json:"public_keys"` // the pinned format.PublicKeys record
}

// KeyChangedError reports that the server serves a contact key other than the pinned one. It
// wraps coffer.ErrAuth. Sharing to the contact stays blocked until VerifyContact accepts the new
// fingerprint.
type KeyChangedError struct {
	Username string
	Pinned   string // fingerprint of the pinned key
	Current  string // fingerprint of the key the server serves now
}

func (e *KeyChangedError) Error() string {
	return fmt.Sprintf("THE PUBLIC KEY OF %q HAS CHANGED: pinned fingerprint %s, the server now serves %s. "+
		"This happens if they reset their account, or if the server or network is attacking you. Compare the new "+
		"fingerprint with %s in person or over another channel, then run 'coffer contact verify %s FINGERPRINT'",
		e.Username, e.Pinned, e.Current, e.Username, e.Username)
}

func (e *KeyChangedError) Unwrap() error { return coffer.ErrAuth }

// ErrContactsNeedState is returned when the client has no state directory to pin keys in.
var ErrContactsNeedState = fmt.Errorf("contacts need a state directory: %w", coffer.ErrInvalid)

func (c *Client) contactsPath() (string, error) {
	if c.cfg.StateDir == "" {
		return "", ErrContactsNeedState
	}
	return filepath.Join(c.cfg.StateDir, accountsDir, c.account.String(), contactsFile), nil
}

// loadContacts reads the pinned contacts (none if the file does not exist).
func (c *Client) loadContacts() (map[string]*Contact, error) {
	p, err := c.contactsPath()
	if err != nil {
		return nil, err
	}
	out := map[string]*Contact{}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("client: contacts: %w", err)
	}
	var list []*Contact
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("client: contacts %s: %v: %w", p, err, coffer.ErrCorrupt)
	}
	for _, ct := range list {
		// The file is local, but re-check what it pins: a pinned record that does not verify is
		// treated as corrupt rather than trusted.
		pk, err := format.ParsePublicKeys(ct.PublicKeys)
		if err != nil || pk.Username != ct.Username || pk.Account != ct.Account || pk.Fingerprint() != ct.Fingerprint {
			return nil, fmt.Errorf("client: contacts %s: entry %q does not match its pinned keys: %w", p, ct.Username, coffer.ErrCorrupt)
		}
		out[ct.Username] = ct
	}
	return out, nil
}

func (c *Client) saveContacts(m map[string]*Contact) error {
	p, err := c.contactsPath()
	if err != nil {
		return err
	}
	list := make([]*Contact, 0, len(m))
	for _, ct := range m {
		list = append(list, ct)
	}
	slices.SortFunc(list, func(a, b *Contact) int { return strings.Compare(a.Username, b.Username) })
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return fmt.Errorf("client: contacts: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("client: contacts: %w", err)
	}
	if err := writeFileAtomic(p, b, 0o600); err != nil {
		return fmt.Errorf("client: contacts: %w", err)
	}
	return nil
}

// fetchKeys gets and verifies username's public key record from the server: self-signature,
// the username it names, and the account the server says it belongs to.
func (c *Client) fetchKeys(ctx context.Context, username string) (*format.PublicKeys, error) {
	if err := format.ValidateUsername(username); err != nil {
		return nil, fmt.Errorf("client: contact: %w", err)
	}
	var resp api.UserKeysResponse
	if err := c.http.json(ctx, "GET", "/v1/users/"+url.PathEscape(username)+"/keys", nil, &resp, true, false); err != nil {
		return nil, fmt.Errorf("client: contact %s: %w", username, err)
	}
	pk, err := format.ParsePublicKeys(resp.PublicKeys)
	if err != nil {
		return nil, fmt.Errorf("client: contact %s: %w", username, err)
	}
	if pk.Username != username || pk.Account != resp.Account {
		return nil, fmt.Errorf("client: contact %s: the server sent the keys of another account: %w", username, coffer.ErrAuth)
	}
	return pk, nil
}

// Contact fetches username's current public keys and checks them against the pinned ones: a
// first sight pins them (unverified); a different key is a *KeyChangedError. Your own username
// returns your own keys, verified.
func (c *Client) Contact(ctx context.Context, username string) (*Contact, error) {
	if username == c.username {
		return &Contact{Username: c.username, Account: c.account, Fingerprint: c.pub.Fingerprint(), Verified: true,
			PublicKeys: c.pub.Marshal()}, nil
	}
	pk, err := c.fetchKeys(ctx, username)
	if err != nil {
		return nil, err
	}
	m, err := c.loadContacts()
	if err != nil {
		return nil, err
	}
	if ct, ok := m[username]; ok {
		if ct.Fingerprint != pk.Fingerprint() || ct.Account != pk.Account {
			return nil, &KeyChangedError{Username: username, Pinned: ct.Fingerprint, Current: pk.Fingerprint()}
		}
		return ct, nil
	}
	ct := &Contact{Username: username, Account: pk.Account, Fingerprint: pk.Fingerprint(), Added: time.Now().UTC(),
		PublicKeys: pk.Marshal()}
	m[username] = ct
	if err := c.saveContacts(m); err != nil {
		return nil, err
	}
	return ct, nil
}

// Contacts returns the pinned contacts sorted by username (local only: no server request).
func (c *Client) Contacts() ([]*Contact, error) {
	m, err := c.loadContacts()
	if err != nil {
		return nil, err
	}
	out := make([]*Contact, 0, len(m))
	for _, ct := range m {
		out = append(out, ct)
	}
	slices.SortFunc(out, func(a, b *Contact) int { return strings.Compare(a.Username, b.Username) })
	return out, nil
}

// RemoveContact forgets a pinned contact (coffer.ErrNotFound if it is not pinned).
func (c *Client) RemoveContact(username string) error {
	m, err := c.loadContacts()
	if err != nil {
		return err
	}
	if _, ok := m[username]; !ok {
		return fmt.Errorf("client: contact %s: not a contact: %w", username, coffer.ErrNotFound)
	}
	delete(m, username)
	return c.saveContacts(m)
}

// normFingerprint keeps only the digits of a typed fingerprint.
func normFingerprint(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}

// VerifyContact marks username verified if fingerprint (compared digits only, as read out of
// band) is the fingerprint of the keys the server serves now. This also accepts a changed key:
// the new keys are pinned. A mismatch is an error wrapping coffer.ErrAuth and changes nothing.
func (c *Client) VerifyContact(ctx context.Context, username, fingerprint string) (*Contact, error) {
	if username == c.username {
		return nil, fmt.Errorf("client: contact %s: that is you: %w", username, coffer.ErrInvalid)
	}
	if len(normFingerprint(fingerprint)) != 40 {
		return nil, fmt.Errorf("client: contact %s: a fingerprint is 40 digits (8 groups of 5): %w", username, coffer.ErrInvalid)
	}
	pk, err := c.fetchKeys(ctx, username)
	if err != nil {
		return nil, err
	}
	if normFingerprint(pk.Fingerprint()) != normFingerprint(fingerprint) {
		return nil, fmt.Errorf("client: contact %s: fingerprint mismatch: the server serves %s: do not trust this key: %w",
			username, pk.Fingerprint(), coffer.ErrAuth)
	}
	m, err := c.loadContacts()
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	ct, ok := m[username]
	if !ok || ct.Fingerprint != pk.Fingerprint() || ct.Account != pk.Account {
		ct = &Contact{Username: username, Added: now}
		m[username] = ct
	}
	ct.Account, ct.Fingerprint, ct.PublicKeys = pk.Account, pk.Fingerprint(), pk.Marshal()
	ct.Verified, ct.VerifiedAt = true, now
	if err := c.saveContacts(m); err != nil {
		return nil, err
	}
	return ct, nil
}
