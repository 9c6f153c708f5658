package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"coffer/client"
)

// Shared folders: `coffer share PATH USER --read|--write`, `share ls|accept|decline|leave|revoke`.

func (a *app) shareCmd() *cobra.Command {
	var read, write, unverified bool
	c := &cobra.Command{
		Use:   "share PATH USER --read|--write [--unverified]",
		Short: "Share a folder with another user; list, accept, leave and revoke shares",
		Long: `Share the folder PATH with USER, read-only (--read) or read-write (--write).

The folder becomes a shared folder: a tree of its own with its own key, history and signed member
list (the first share converts it: its content is re-signed into the new tree, nothing is
uploaded again). USER receives an invite carrying the folder key encrypted to their public key and
signed by you; they accept it with 'coffer share accept ID'. Every change is signed by its writer;
a change by a reader, a removed member or an unknown key is refused by every member's client.

USER's public key must be a verified contact ('coffer contact verify USER FINGERPRINT' after
comparing fingerprints out of band). --unverified shares to a key that was only pinned on first
sight (a malicious server could have substituted it). A key that changed since it was pinned
blocks sharing (exit code 6) until verified again.

Content in a shared folder counts against its owner's quota, whoever uploads it. If a share is
interrupted, run the same command again: it finishes the conversion.

Exit codes: 3 for an unverified contact (without --unverified) and for writes to a read-only
share; 6 for a changed key or a forged invite, roster or change; 4 for an unknown user or path.`,
		Example: "  coffer share /projects bob --write\n  coffer share /photos carol --read\n  coffer share ls\n" +
			"  coffer share accept 3fa0c1...\n  coffer share revoke /projects bob",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if read == write {
				return usagef("give exactly one of --read and --write")
			}
			p, c, err := a.pathSession(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			res, err := c.Share(cmd.Context(), p, args[1], client.ShareOptions{Write: write, Unverified: unverified})
			if err != nil {
				return err
			}
			role := "read-only"
			if res.Write {
				role = "read-write"
			}
			switch {
			case res.Already:
				a.info("%s already has %s access to %s.", res.Member, role, res.Path)
			default:
				if res.Converted {
					a.info("%s is now a shared folder (id %s).", res.Path, res.Tree)
				}
				a.info("Invited %s (%s) to %s; they run 'coffer share accept %s'.", res.Member, role, res.Path, res.Tree)
			}
			if !res.Verified {
				fmt.Fprintf(a.stderr, "WARNING: shared with %s's key WITHOUT a verified fingerprint: if the server substituted it, "+
					"the server can read %s. Compare 'coffer contact fingerprint %s' with them.\n", res.Member, res.Path, res.Member)
			}
			return nil
		},
	}
	f := c.Flags()
	f.BoolVar(&read, "read", false, "the member may read the folder")
	f.BoolVar(&write, "write", false, "the member may read and change the folder")
	f.BoolVar(&unverified, "unverified", false, "share even if USER's fingerprint was not verified (DANGEROUS)")
	c.AddCommand(a.shareLsCmd(), a.shareAcceptCmd(), a.shareDeclineCmd(), a.shareLeaveCmd(), a.shareRevokeCmd())
	return c
}

func roleName(write bool) string {
	if write {
		return "write"
	}
	return "read"
}

func (a *app) shareLsCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "ls",
		Short: "List the folders you share and the folders shared with you",
		Long: `List outgoing shares (your shared folders, their members, role and state: invited, accepted,
declined, left, removed) and incoming shares (pending invites with the owner's fingerprint state,
accepted shares with the path they are mounted at).`,
		Example: "  coffer share ls\n  coffer share ls --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			l, err := c.Shares(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(l)
			}
			t := newTable(a.stdout)
			for _, o := range l.Outgoing {
				if len(o.Members) == 0 {
					t.row("out", o.Path, "-", "-", "no members", o.ID)
				}
				for _, m := range o.Members {
					t.row("out", o.Path, m.Username, roleName(m.Write), m.Status, o.ID)
				}
			}
			for _, in := range l.Incoming {
				where := in.Path
				if where == "" {
					where = "-"
				}
				state := in.Status
				if in.Status == "invited" && in.KeyState != "" {
					state += ", owner key " + in.KeyState
				}
				t.row("in", where, in.Owner, roleName(in.Write), state, in.ID)
			}
			if err := t.flush(); err != nil {
				return err
			}
			for _, in := range l.Incoming {
				if in.Status == "invited" {
					a.info("Invite from %s (fingerprint %s, %s): 'coffer share accept %s' or 'coffer share decline %s'.",
						in.Owner, in.Fingerprint, in.KeyState, in.ID, in.ID)
				}
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func (a *app) shareAcceptCmd() *cobra.Command {
	var as string
	c := &cobra.Command{
		Use:   "accept ID [--as PATH]",
		Short: "Accept a shared folder and mount it",
		Long: `Accept the invite ID (see 'coffer share ls') and mount the shared folder in your drive, at
/<folder name> (with " (2)" etc. if the name is taken) or at --as PATH. The invite is verified
first: signed by the owner's pinned key (pinned now if first seen; a changed key is refused), its
folder key encrypted to your key, its member list signed by the owner.`,
		Example: "  coffer share accept 3fa0c19be2d84f7a9c1e5d3b2a190f77\n  coffer share accept 3fa0c19be2d84f7a9c1e5d3b2a190f77 --as /work/shared",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if as != "" {
				if _, err := remotePath(as); err != nil {
					return err
				}
			}
			c, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			res, err := c.AcceptShare(cmd.Context(), args[0], as)
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, res.Path)
			a.info("Mounted %s's shared folder (%s) at %s.", res.Owner, roleName(res.Write), res.Path)
			return nil
		},
	}
	c.Flags().StringVar(&as, "as", "", "mount the shared folder at this path")
	return c
}

func (a *app) shareDeclineCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "decline ID",
		Short:   "Decline an invite to a shared folder",
		Example: "  coffer share decline 3fa0c19be2d84f7a9c1e5d3b2a190f77",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			return c.DeclineShare(cmd.Context(), args[0])
		},
	}
}

func (a *app) shareLeaveCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "leave PATH",
		Short:   "Leave a shared folder (removes its mount)",
		Long:    "Leave the shared folder mounted at PATH: your access ends and the mount folder is removed.",
		Example: "  coffer share leave /projects",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, c, err := a.pathSession(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return c.LeaveShare(cmd.Context(), p)
		},
	}
}

func (a *app) shareRevokeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke PATH USER",
		Short: "Remove a member from your shared folder and rotate its keys",
		Long: `Remove USER from the shared folder at PATH (you must own it). In the same atomic step every file
and folder gets a new key and the remaining members get the new folder key: whatever is written
afterwards cannot be decrypted with anything USER held. Nothing is uploaded again.`,
		Example: "  coffer share revoke /projects bob",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, c, err := a.pathSession(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			res, err := c.Revoke(cmd.Context(), p, args[1])
			if err != nil {
				return err
			}
			a.info("Removed %s from %s; keys rotated (epoch %d, %d nodes re-keyed, %d members re-invited).",
				res.Member, res.Path, res.Epoch, res.Nodes, res.Members)
			return nil
		},
	}
}
