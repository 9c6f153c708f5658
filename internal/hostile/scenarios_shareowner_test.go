package hostile

// Scenario 28 of doc/SECURITY.md, new-device variant: a member colluding with the server passes
// itself off as a shared folder's owner to another member's fresh device (no pinned roster, no
// pinned contacts). The owner a device trusts comes from its own sealed key bundle.

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"coffer"
	"coffer/api"
	"coffer/format"
	"coffer/internal/testenv"
)

func TestScenario28_MemberPosesAsOwnerToNewDevice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newShareFixture(t, false, true) // bob reads, carol writes; both accepted
	alice, bob, carol := captureSecrets(t, f.env, "alice"), captureSecrets(t, f.env, "bob"), captureSecrets(t, f.env, "carol")
	// Accepting sealed alice (account and key) into carol's bundle entry as the owner.
	if sk, ok := carol.bundle.ShareOf(f.tree); !ok || sk.Owner != alice.account || sk.OwnerKey != alice.bundle.SigningPublic() {
		t.Fatalf("carol's bundle entry: %+v %v", sk.Owner, ok)
	}
	// Control: carol's new device lists the honest folder.
	if es, err := f.fresh(t, "carol").List(ctx, "/proj"); err != nil || len(es) != 2 {
		t.Fatalf("honest listing on a new device: %v %v", es, err)
	}

	// Bob (a reader) signs a roster naming himself owner, alice and carol members at the
	// current epoch, with a high generation; the server serves it (and bob's name as owner).
	member := func(s *secrets, user string, role uint8) format.Member {
		pk := s.bundle.PublicKeys(user)
		return format.Member{Account: s.account, Role: role, Signing: [32]byte(pk.Signing), KEMFingerprint: pk.KEMFingerprint()}
	}
	forged := &format.Roster{Tree: f.tree, Owner: bob.account, Generation: 50, Epoch: 1,
		Members: []format.Member{member(alice, "alice", format.ShareWrite), member(carol, "carol", format.ShareWrite)}}
	forged.SortMembers()
	if err := forged.Sign(bob.bundle.SigningKey()); err != nil {
		t.Fatal(err)
	}
	// What the forged roster would let bob do: write "as owner" (a file signed by bob, put
	// straight into the store).
	injectAs(t, f.env, f.tree, alice.account, carol, bob, "from-the-fake-owner.txt")
	f.env.SetHook(func(req *http.Request, resp *http.Response) error {
		if strings.HasSuffix(req.URL.Path, "/roster") && req.Method == "GET" && resp.StatusCode == 200 {
			b, _ := testenv.ReadBody(resp)
			var rr api.RosterResponse
			if err := json.Unmarshal(b, &rr); err != nil {
				return err
			}
			rr.Roster, rr.Owner, rr.OwnerUsername = forged.Marshal(), bob.account, "bob"
			nb, _ := json.Marshal(&rr)
			testenv.ReplaceBody(resp, nb)
		}
		return nil
	})
	// Carol's fresh device (and her old one) refuse the roster: the owner is not the one her
	// key bundle names.
	err := expectListRefused(t, f.fresh(t, "carol"), "/proj", coffer.ErrAuth)
	if !strings.Contains(err.Error(), "key bundle says the owner is") {
		t.Errorf("new device: refusal does not say why: %v", err)
	}
	err = expectListRefused(t, f.carol, "/proj", coffer.ErrAuth)
	if !strings.Contains(err.Error(), "key bundle says the owner is") {
		t.Errorf("old device: refusal does not say why: %v", err)
	}

	// The invite path: the server re-serves the share as pending, with an invite bob sealed to
	// carol (his own tree key) and his roster. A new device of carol's re-accepting refuses it.
	inv, err := format.SealInvite(f.tree, 1, format.ShareWrite, format.NewTreeKey(), bob.bundle, carol.bundle.PublicKeys("carol"))
	if err != nil {
		t.Fatal(err)
	}
	f.env.SetHook(invitesHook(func(ir *api.InvitesResponse) {
		for i := range ir.Invites {
			ir.Invites[i].Status, ir.Invites[i].Invite, ir.Invites[i].Roster = api.StatusInvited, inv.Marshal(), forged.Marshal()
			ir.Invites[i].Owner, ir.Invites[i].OwnerUsername = bob.account, "bob"
			ir.Invites[i].OwnerPublicKeys = bob.bundle.PublicKeys("bob").Marshal()
		}
	}))
	carol2 := f.fresh(t, "carol")
	_, err = carol2.AcceptShare(ctx, f.id, "")
	if !errors.Is(err, coffer.ErrAuth) || !strings.Contains(err.Error(), "owner recorded in this account's key bundle") {
		t.Fatalf("new device accepts the fake owner's invite: %v", err)
	}
	f.env.SetHook(nil)
	// The real roster decides: bob's file is refused as unauthorised, on every device.
	err = expectListRefused(t, carol2, "/proj", coffer.ErrAuth)
	if !strings.Contains(err.Error(), "may not write") {
		t.Errorf("bob's file under the real roster: %v", err)
	}
}
