package server

import (
	"bufio"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"net/http"
	"strings"
	"testing"
	"time"

	"coffer"
	"coffer/api"
	"coffer/format"
	"coffer/internal/blobstore"
)

// uploadLinkOf seals an upload-only link to folder for u.
func (u *user) uploadLinkOf(folder coffer.NodeID) (api.LinkCreateRequest, *format.Link, *format.LinkKeys) {
	u.e.t.Helper()
	id, secret := format.NewLinkID(), format.NewLinkSecret()
	keys := format.DeriveLinkKeys(secret, nil, format.KDFParams{})
	fl, err := format.SealUploadLink(id, u.tree(), folder, 0, format.KDFParams{}, keys, u.bundle)
	if err != nil {
		u.e.t.Fatal(err)
	}
	return api.LinkCreateRequest{Record: fl.Marshal(), Verifier: keys.Auth.Public().(ed25519.PublicKey)}, fl, keys
}

// sealTestDrop makes a drop for link fl of u (one file of the given blob).
func (u *user) sealTestDrop(fl *format.Link, keys *format.LinkKeys, blob coffer.BlobID, size int) []byte {
	u.e.t.Helper()
	uk, err := fl.OpenUpload(keys)
	if err != nil {
		u.e.t.Fatal(err)
	}
	ck := format.NewContentKey()
	ct := &format.Content{Key: ck, Commitment: ck.Commitment(), Size: uint64(size), ChunkSize: format.DefaultChunkSize,
		Hash: sha256.Sum256(nil), Chunks: []format.ChunkRef{{Blob: blob, Length: uint32(size) + 16}}}
	d, err := format.SealDrop(fl.ID, format.NewDropID(), u.bundle.PublicKeys(u.name), uk,
		&format.DropFile{Name: "in.txt", MTime: 1, Mode: 0o644, Content: ct})
	if err != nil {
		u.e.t.Fatal(err)
	}
	return d.Marshal()
}

func TestUploadLink(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.signup("alice"), e.signup("bob")
	inbox := alice.folder(alice.root, "inbox")
	b0, _, _ := alice.upload([]byte("alice's own blob"))
	secret := alice.file(inbox.Node, "secret.txt", b0.Blob)
	alice.commit(inbox, secret)

	// Creation: limits must fit the kind of link.
	req, fl, keys := alice.uploadLinkOf(inbox.Node)
	bad := req
	bad.MaxDownloads = 3
	st, ae := e.call("POST", "/v1/links", alice.token, bad, nil)
	wantErr(t, st, ae, 400, api.CodeBadRequest)
	rreq, _, _ := alice.linkOf(inbox.Node, format.KindFolder, nil)
	rreq.MaxUploads = 3
	st, ae = e.call("POST", "/v1/links", alice.token, rreq, nil)
	wantErr(t, st, ae, 400, api.CodeBadRequest)
	req.MaxUploads = 2
	var info api.LinkInfo
	if st, ae := e.call("POST", "/v1/links", alice.token, req, &info); st != 200 || !info.UploadOnly || info.MaxUploads != 2 {
		t.Fatalf("create: %d %+v %+v", st, ae, info)
	}

	// Open: no node record, no download counted.
	st, ae, resp := e.open(fl, keys)
	if st != 200 || len(resp.Node) != 0 || resp.Token == "" || resp.Owner != "alice" {
		t.Fatalf("open: %d %+v node %d bytes", st, ae, len(resp.Node))
	}
	tok := resp.Token

	// The token reads nothing: no listing, no blob (not even alice's own).
	tree := alice.tree().String()
	for _, p := range []string{"/trees/" + tree + "/folders/" + inbox.Node.String(), "/blobs/" + b0.Blob.String()} {
		st, ae := e.call("GET", linkPath(fl, p), tok, nil, nil)
		wantErr(t, st, ae, http.StatusForbidden, api.CodeForbidden)
	}
	// Account routes refuse the link token.
	st, ae = e.call("GET", "/v1/trees/"+tree+"/folders/"+inbox.Node.String(), tok, nil, nil)
	wantErr(t, st, ae, http.StatusUnauthorized, api.CodeUnauthorized)

	// Upload a blob and a drop; the blob is alice's and counts against her usage.
	var put api.BlobPutResponse
	if st, ae := e.putBlob(linkPath(fl, ""), tok, []byte("ciphertext of a visitor"), &put); st != 200 {
		t.Fatalf("link blob put: %d %+v", st, ae)
	}
	if b, err := e.srv.meta.Blob(t.Context(), put.Blob); err != nil || b.Owner != alice.acct {
		t.Fatalf("blob owner: %+v %v", b, err)
	}
	drop := alice.sealTestDrop(fl, keys, put.Blob, 7)
	var dr api.DropCreateResponse
	if st, ae := e.call("POST", linkPath(fl, "/drops"), tok, api.DropCreateRequest{Drop: drop, Blobs: []coffer.BlobID{put.Blob}}, &dr); st != 200 || dr.Uploads != 1 {
		t.Fatalf("drop: %d %+v %+v", st, ae, dr)
	}
	// The same drop again: taken ID. A drop naming bob's blob, or an unknown one: refused.
	st, ae = e.call("POST", linkPath(fl, "/drops"), tok, api.DropCreateRequest{Drop: drop, Blobs: []coffer.BlobID{put.Blob}}, nil)
	wantErr(t, st, ae, http.StatusConflict, api.CodeExists)
	bobBlob, _, _ := bob.upload([]byte("bob's"))
	// Link uploads are checked like account uploads: a body that does not match its CRC-32C, or
	// another account's blob ID, is refused and stores nothing.
	junk := []byte("corrupted in transfer")
	st, ae = e.putBlobAs(linkPath(fl, ""), tok, sha256.Sum256(junk), api.FormatCRC32C(crc32.Checksum(junk, blobstore.CRC32C)^1), junk, nil)
	wantErr(t, st, ae, 400, api.CodeBadRequest)
	if !strings.Contains(ae.Message, "CRC-32C") {
		t.Errorf("CRC mismatch through a link: message %q does not name the check", ae.Message)
	}
	st, ae = e.putBlobAs(linkPath(fl, ""), tok, bobBlob.Blob, crcOf(junk), junk, nil)
	wantErr(t, st, ae, http.StatusConflict, api.CodeExists)
	if _, err := e.blobs.Stat(t.Context(), sha256.Sum256(junk)); !errors.Is(err, coffer.ErrNotFound) {
		t.Errorf("a refused link upload left bytes: %v", err)
	}
	if got := readStored(t, e, bobBlob.Blob); string(got) != "bob's" {
		t.Errorf("bob's blob after a link upload claiming its ID: %q", got)
	}
	st, ae = e.call("POST", linkPath(fl, "/drops"), tok, api.DropCreateRequest{Drop: alice.sealTestDrop(fl, keys, put.Blob, 7), Blobs: []coffer.BlobID{bobBlob.Blob}}, nil)
	wantErr(t, st, ae, 400, api.CodeBadRequest)
	// Garbage, and a drop addressed to another account.
	st, ae = e.call("POST", linkPath(fl, "/drops"), tok, api.DropCreateRequest{Drop: []byte("CFD1 junk")}, nil)
	wantErr(t, st, ae, 400, api.CodeBadRequest)
	other, _ := format.ParseDrop(alice.sealTestDrop(fl, keys, put.Blob, 7))
	other.Owner = bob.acct
	st, ae = e.call("POST", linkPath(fl, "/drops"), tok, api.DropCreateRequest{Drop: other.Marshal()}, nil)
	wantErr(t, st, ae, 400, api.CodeBadRequest)

	// A read link's token cannot upload.
	rreq.MaxUploads = 0
	_, rfl, rkeys := alice.linkOf(inbox.Node, format.KindFolder, nil)
	rreq.Record, rreq.Verifier = rfl.Marshal(), rkeys.Auth.Public().(ed25519.PublicKey)
	if st, ae := e.call("POST", "/v1/links", alice.token, rreq, nil); st != 200 {
		t.Fatalf("create read link: %d %+v", st, ae)
	}
	_, _, rresp := e.open(rfl, rkeys)
	st, ae = e.putBlob(linkPath(rfl, ""), rresp.Token, []byte("x"), nil)
	wantErr(t, st, ae, http.StatusForbidden, api.CodeForbidden)

	// The owner lists and deletes; others see nothing.
	var list api.DropsResponse
	if st, ae := e.call("GET", "/v1/drops", alice.token, nil, &list); st != 200 || len(list.Drops) != 1 || list.More {
		t.Fatalf("drops: %d %+v %d", st, ae, len(list.Drops))
	}
	if list.Drops[0].Link != hex.EncodeToString(fl.ID[:]) || string(list.Drops[0].Drop) != string(drop) ||
		len(list.Drops[0].Blobs) != 1 || list.Drops[0].Blobs[0] != put.Blob {
		t.Fatalf("drop info %+v", list.Drops[0])
	}
	var bl api.DropsResponse
	if st, _ := e.call("GET", "/v1/drops", bob.token, nil, &bl); st != 200 || len(bl.Drops) != 0 {
		t.Fatalf("bob sees %d drops", len(bl.Drops))
	}
	st, ae = e.call("GET", "/v1/drops", tok, nil, nil)
	wantErr(t, st, ae, http.StatusUnauthorized, api.CodeUnauthorized)
	st, ae = e.call("DELETE", "/v1/drops/"+list.Drops[0].ID, bob.token, nil, nil)
	wantErr(t, st, ae, http.StatusNotFound, api.CodeNotFound)

	// Second upload reaches the limit; a third is refused as gone, also for blobs.
	d2 := alice.sealTestDrop(fl, keys, put.Blob, 7)
	if st, ae := e.call("POST", linkPath(fl, "/drops"), tok, api.DropCreateRequest{Drop: d2}, nil); st != 200 {
		t.Fatalf("second drop: %d %+v", st, ae)
	}
	st, ae = e.call("POST", linkPath(fl, "/drops"), tok, api.DropCreateRequest{Drop: alice.sealTestDrop(fl, keys, put.Blob, 7)}, nil)
	wantErr(t, st, ae, http.StatusGone, api.CodeGone)
	st, ae = e.putBlob(linkPath(fl, ""), tok, []byte("more"), nil)
	wantErr(t, st, ae, http.StatusGone, api.CodeGone)

	if st, _ := e.call("DELETE", "/v1/drops/"+list.Drops[0].ID, alice.token, nil, nil); st != 204 {
		t.Fatalf("delete: %d", st)
	}
	if st, _ := e.call("GET", "/v1/drops", alice.token, nil, &list); st != 200 || len(list.Drops) != 1 {
		t.Fatalf("drops after delete: %d", len(list.Drops))
	}
	// Batch delete: bob's request removes nothing of alice's; alice's removes hers.
	var del api.DropsDeleteResponse
	ids := api.DropsDeleteRequest{Drops: []string{list.Drops[0].ID, strings.Repeat("ab", 16)}}
	if st, _ := e.call("POST", "/v1/drops/delete", bob.token, ids, &del); st != 200 || del.Deleted != 0 {
		t.Fatalf("bob's batch delete: %d %d", st, del.Deleted)
	}
	if st, _ := e.call("POST", "/v1/drops/delete", alice.token, ids, &del); st != 200 || del.Deleted != 1 {
		t.Fatalf("batch delete: %d %d", st, del.Deleted)
	}
	st, ae = e.call("POST", "/v1/drops/delete", alice.token, api.DropsDeleteRequest{Drops: []string{"XYZ"}}, nil)
	wantErr(t, st, ae, 400, api.CodeBadRequest)

	// Revocation: the token stops working.
	req2, fl2, keys2 := alice.uploadLinkOf(inbox.Node)
	if st, _ := e.call("POST", "/v1/links", alice.token, req2, nil); st != 200 {
		t.Fatal("create")
	}
	_, _, r2 := e.open(fl2, keys2)
	if st, _ := e.call("DELETE", "/v1/links/"+hex.EncodeToString(fl2.ID[:]), alice.token, nil, nil); st != 204 {
		t.Fatal("revoke")
	}
	st, ae = e.putBlob(linkPath(fl2, ""), r2.Token, []byte("x"), nil)
	wantErr(t, st, ae, http.StatusGone, api.CodeGone)
}

func TestUploadLinkQuota(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.DefaultQuota = 100 })
	alice := e.signup("alice")
	inbox := alice.folder(alice.root, "inbox")
	alice.commit(inbox)
	req, fl, keys := alice.uploadLinkOf(inbox.Node)
	if st, _ := e.call("POST", "/v1/links", alice.token, req, nil); st != 200 {
		t.Fatal("create")
	}
	_, _, resp := e.open(fl, keys)
	st, ae := e.putBlob(linkPath(fl, ""), resp.Token, make([]byte, 101), nil)
	wantErr(t, st, ae, http.StatusInsufficientStorage, api.CodeQuota)
	// A drop record bigger than the quota left.
	st, ae = e.call("POST", linkPath(fl, "/drops"), resp.Token, api.DropCreateRequest{Drop: alice.sealTestDrop(fl, keys, coffer.BlobID{1}, 7)}, nil)
	wantErr(t, st, ae, http.StatusInsufficientStorage, api.CodeQuota)
}

func TestChangeStreamAnnouncesDrops(t *testing.T) {
	e := newEnv(t)
	alice := e.signup("alice")
	inbox := alice.folder(alice.root, "inbox")
	alice.commit(inbox)
	req, fl, keys := alice.uploadLinkOf(inbox.Node)
	if st, _ := e.call("POST", "/v1/links", alice.token, req, nil); st != 200 {
		t.Fatal("create")
	}
	stream := e.request("GET", "/v1/changes/stream", alice.token, nil)
	defer stream.Body.Close()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stream.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	_, _, resp := e.open(fl, keys)
	var put api.BlobPutResponse
	e.putBlob(linkPath(fl, ""), resp.Token, []byte("ciphertext"), &put)
	if st, ae := e.call("POST", linkPath(fl, "/drops"), resp.Token, api.DropCreateRequest{Drop: alice.sealTestDrop(fl, keys, put.Blob, 7), Blobs: []coffer.BlobID{put.Blob}}, nil); st != 200 {
		t.Fatalf("drop: %d %+v", st, ae)
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("stream ended without a drops event")
			}
			if strings.HasPrefix(l, "data: ") && strings.Contains(l, `"pending":1`) {
				return
			}
		case <-timeout:
			t.Fatal("no drops event within 10 s")
		}
	}
}
