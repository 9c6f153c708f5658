package client

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"coffer"
	"coffer/api"
	"coffer/format"
)

// UploadLink is an opened upload-only (file-request) link: a visitor without an account can
// upload files and folders into the owner's folder, and read nothing there.
//
// Verification: the link record must be signed by its owner key, name the URL's link ID and be
// upload-only; the URL's secret (and password) must unwrap its link key and the owner's key
// fingerprint; the owner's public keys the server serves must be self-signed by the link's owner
// key and have that fingerprint. Files are then encrypted to the owner's KEM key (FORMAT.md
// §12.3), so the server, which serves those keys, cannot substitute its own.
type UploadLink struct {
	cfg   Config
	tr    *transport
	hexID string
	fl    *format.Link
	uk    *format.UploadKeys
	owner *format.PublicKeys
}

// OpenUploadLink opens an upload-only link URL anonymously (see UploadLink). A read link is
// ErrLinkUploadOnly. cfg.Server is ignored (the URL names the server).
func OpenUploadLink(ctx context.Context, cfg Config, url string, opts LinkOpenOptions) (*UploadLink, error) {
	p, err := proveLink(ctx, cfg, url, opts, true)
	if err != nil {
		return nil, err
	}
	fl, uk, owner, err := verifyUploadLink(&p.resp, p.id, p.keys)
	if err != nil {
		return nil, fmt.Errorf("client: open upload link: %w", err)
	}
	tr, err := newTransport(p.server, p.hc, p.cfg.Logger)
	if err != nil {
		return nil, err
	}
	tr.setToken(p.resp.Token)
	return &UploadLink{cfg: p.cfg, tr: tr, hexID: p.hexID, fl: fl, uk: uk, owner: owner}, nil
}

// verifyUploadLink checks the server's answer to the open of an upload-only link.
func verifyUploadLink(resp *api.LinkOpenResponse, id format.LinkID, keys *format.LinkKeys) (*format.Link, *format.UploadKeys, *format.PublicKeys, error) {
	fl, err := format.ParseLink(resp.Record)
	if err != nil {
		return nil, nil, nil, err
	}
	if fl.ID != id {
		return nil, nil, nil, fmt.Errorf("the server sent the record of another link: %w", coffer.ErrAuth)
	}
	if err := fl.VerifySignature(); err != nil {
		return nil, nil, nil, err
	}
	if !fl.UploadOnly() {
		return nil, nil, nil, fmt.Errorf("the server sent a read link for an upload-only one: %w", coffer.ErrAuth)
	}
	uk, err := fl.OpenUpload(keys)
	if err != nil {
		return nil, nil, nil, err
	}
	pk, err := format.ParsePublicKeys(resp.OwnerPublicKeys)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("owner keys: %w", err)
	}
	if !pk.Signing.Equal(ed25519.PublicKey(fl.Owner[:])) || pk.Username != resp.Owner ||
		format.KeyFingerprint(pk) != uk.OwnerFingerprint {
		return nil, nil, nil, fmt.Errorf("the owner's public keys served do not match the link (substituted keys?): %w", coffer.ErrAuth)
	}
	return fl, uk, pk, nil
}

// Owner is the username of the link's owner (as signed in the owner's public keys).
func (u *UploadLink) Owner() string { return u.owner.Username }

// dropItem is one file or empty folder to upload.
type dropItem struct {
	local string
	path  []string // folders below the link's folder
	name  string
	dir   bool
	size  int64
}

// planDrops lists what uploading locals means: files, and empty folders, each with its folder
// path (a folder source keeps its own name as the first component). Symbolic links and special
// files are skipped with a warning. Names and depths are checked before anything is sent.
func planDrops(locals []string) (items []dropItem, warnings []string, err error) {
	check := func(it dropItem) error {
		if len(it.path) > format.MaxDropPath {
			return fmt.Errorf("client: upload %s: more than %d folder levels: %w", it.local, format.MaxDropPath, coffer.ErrInvalid)
		}
		for _, n := range append(slices.Clone(it.path), it.name) {
			if err := format.ValidateName(n); err != nil {
				return fmt.Errorf("client: upload %s: %w", it.local, err)
			}
		}
		return nil
	}
	for _, local := range locals {
		fi, err := os.Lstat(local)
		if err != nil {
			return nil, nil, fmt.Errorf("client: upload: %w", err)
		}
		abs, err := filepath.Abs(local)
		if err != nil {
			return nil, nil, fmt.Errorf("client: upload: %w", err)
		}
		base := filepath.Base(abs)
		switch {
		case fi.Mode().IsRegular():
			it := dropItem{local: local, name: base, size: fi.Size()}
			if err := check(it); err != nil {
				return nil, nil, err
			}
			items = append(items, it)
			continue
		case !fi.IsDir():
			warnings = append(warnings, fmt.Sprintf("skipped %s: not a regular file or folder", local))
			continue
		}
		err = filepath.WalkDir(local, func(p string, de fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(local, p)
			if err != nil {
				return err
			}
			parts := []string{base}
			if rel != "." {
				parts = append(parts, strings.Split(filepath.ToSlash(rel), "/")...)
			}
			it := dropItem{local: p, path: parts[:len(parts)-1], name: parts[len(parts)-1]}
			switch {
			case de.IsDir():
				ents, err := os.ReadDir(p)
				if err != nil {
					return err
				}
				if len(ents) > 0 {
					return nil
				}
				it.dir = true
			case de.Type().IsRegular():
				info, err := de.Info()
				if err != nil {
					return err
				}
				it.size = info.Size()
			default:
				warnings = append(warnings, fmt.Sprintf("skipped %s: not a regular file or folder", p))
				return nil
			}
			if err := check(it); err != nil {
				return err
			}
			items = append(items, it)
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("client: upload: %w", err)
		}
	}
	return items, warnings, nil
}

// Upload sends local files and folders (recursively) into the link's folder: each file's chunks
// are encrypted under a fresh content key and uploaded as blobs through the link, then its
// description (name, folder path, size, times, content key and chunk list) is sealed to the
// owner as a drop. The owner's client imports drops into the folder (never overwriting: a taken
// name gets a " (1)" suffix). Empty folders are sent too. Nothing is resumable: running it again
// uploads everything again. Errors name the file; a quota error means the owner's storage is full.
func (u *UploadLink) Upload(ctx context.Context, locals []string, opts TransferOptions) (TransferResult, error) {
	items, warnings, err := planDrops(locals)
	res := TransferResult{Warnings: warnings}
	if err != nil {
		return res, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan dropItem)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range max(1, u.cfg.Parallel) {
		wg.Go(func() {
			buf := make([]byte, packCap)
			for it := range work {
				if ctx.Err() != nil {
					continue
				}
				var n int64
				var err error
				if it.dir {
					err = u.sendDrop(ctx, &format.DropFile{Path: it.path, Name: it.name, MTime: mtimeOf(it.local), Mode: 0o755}, nil)
				} else {
					n, err = u.sendFile(ctx, it, buf, opts.Progress)
				}
				if err != nil {
					cancel(err)
					continue
				}
				mu.Lock()
				if it.dir {
					res.Folders++
				} else {
					res.Files++
					res.Bytes += n
				}
				mu.Unlock()
			}
		})
	}
	for _, it := range items {
		if ctx.Err() != nil {
			break
		}
		work <- it
	}
	close(work)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return res, err
	}
	return res, nil
}

func mtimeOf(p string) int64 {
	if fi, err := os.Stat(p); err == nil {
		return fi.ModTime().UnixNano()
	}
	return 0
}

// sendFile encrypts and uploads one file and its drop; it returns the bytes sent.
func (u *UploadLink) sendFile(ctx context.Context, it dropItem, buf []byte, prog Progress) (int64, error) {
	f, err := os.Open(it.local)
	if err != nil {
		return 0, fmt.Errorf("client: upload: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("client: upload: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("client: upload %s: no longer a regular file: %w", it.local, coffer.ErrConflict)
	}
	tr := startTracker(prog, it.local, fi.Size())
	n, err := u.sendContent(ctx, it, f, fi, buf, tr)
	tr.Done(err)
	return n, err
}

func (u *UploadLink) sendContent(ctx context.Context, it dropItem, f *os.File, fi os.FileInfo, buf []byte, tr Tracker) (int64, error) {
	const cs = format.DefaultChunkSize
	size := uint64(fi.Size())
	ck := format.NewContentKey()
	ciph := ck.Cipher()
	n := format.ChunkCount(size, cs)
	chunks := make([]format.ChunkRef, n)
	h := sha256.New()
	var blobs []coffer.BlobID
	changed := fmt.Errorf("client: upload %s: the file changed while it was read: %w", it.local, coffer.ErrConflict)
	for first := uint64(0); first < n; first += packChunks {
		off := 0
		last := min(first+packChunks, n)
		lengths := make([]uint32, 0, last-first)
		for i := first; i < last; i++ {
			plen := int(format.ChunkPlainLen(size, cs, i))
			p := buf[off : off+plen]
			if _, err := io.ReadFull(f, p); err != nil {
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					return 0, changed
				}
				return 0, fmt.Errorf("client: upload: %w", err)
			}
			h.Write(p)
			ciph.Seal(buf[off:off], p, i, i == n-1)
			chunks[i] = format.ChunkRef{Offset: uint64(off), Length: uint32(plen + 16)}
			lengths = append(lengths, uint32(plen+16))
			off += plen + 16
		}
		blob, err := u.putBlob(ctx, buf[:off], lengths)
		if err != nil {
			return 0, fmt.Errorf("client: upload %s: %w", it.local, err)
		}
		for i := first; i < last; i++ {
			chunks[i].Blob = blob
		}
		blobs = append(blobs, blob)
		tr.Add(int64(off) - int64(16*(last-first)))
	}
	if fi2, err := f.Stat(); err != nil || fi2.Size() != fi.Size() || !fi2.ModTime().Equal(fi.ModTime()) {
		return 0, changed
	}
	ct := &format.Content{Key: ck, Commitment: ck.Commitment(), Size: size, ChunkSize: cs, Hash: [32]byte(h.Sum(nil)), Chunks: chunks}
	df := &format.DropFile{Path: it.path, Name: it.name, MTime: fi.ModTime().UnixNano(), Mode: uint32(fi.Mode().Perm()), Content: ct}
	if err := u.sendDrop(ctx, df, blobs); err != nil {
		return 0, err
	}
	return int64(size), nil
}

// putBlob uploads one blob through the link and checks the server's acknowledgement (see
// Client.putBlob).
func (u *UploadLink) putBlob(ctx context.Context, b []byte, lengths []uint32) (coffer.BlobID, error) {
	id, err := putBlobAt(ctx, u.tr, "/v1/links/"+u.hexID+"/blobs/", b, lengths)
	if err != nil {
		return coffer.BlobID{}, uploadLinkError(err)
	}
	return id, nil
}

// sendDrop seals df to the owner and posts it with the blobs it references.
func (u *UploadLink) sendDrop(ctx context.Context, df *format.DropFile, blobs []coffer.BlobID) error {
	what := strings.Join(append(slices.Clone(df.Path), df.Name), "/")
	d, err := format.SealDrop(u.fl.ID, format.NewDropID(), u.owner, u.uk, df)
	if err != nil {
		return fmt.Errorf("client: upload %s: %w", what, err)
	}
	req := api.DropCreateRequest{Drop: d.Marshal(), Blobs: blobs}
	if req.Blobs == nil {
		req.Blobs = []coffer.BlobID{}
	}
	var resp api.DropCreateResponse
	// Retried on network errors: the drop ID is random, so "exists" means an earlier attempt of
	// this very request was stored.
	if err := u.tr.json(ctx, "POST", "/v1/links/"+u.hexID+"/drops", &req, &resp, true, false); err != nil && !errors.Is(err, coffer.ErrExist) {
		return fmt.Errorf("client: upload %s: %w", what, uploadLinkError(err))
	}
	return nil
}

// uploadLinkError maps the server's answers to uploads: link sentinels, and a clear quota error.
func uploadLinkError(err error) error {
	var se *ServerError
	if errors.As(err, &se) && se.Code == api.CodeQuota {
		return fmt.Errorf("the link owner's storage quota is full: %w", err)
	}
	return linkError(err)
}
