package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"coffer/client"
)

// Contacts: `coffer contact add|ls|rm|fingerprint|verify`. Keys are pinned on first sight in the
// client state directory; a changed key is an error (exit 6) until verified again.

func (a *app) contactCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "contact",
		Short: "Other users' keys: pin, compare and verify fingerprints",
		Long: `Contacts are other users whose public keys this machine has pinned. A key is pinned the first time
it is seen (add, fingerprint). Compare its fingerprint (8 groups of 5 digits) with the person in
person or over another channel, then mark it verified. If the server ever serves a different key
for a contact, every contact command fails loudly (exit code 6) until you verify the new
fingerprint: the server is never trusted to vouch for a key.`,
		Example: "  coffer contact add bob\n  coffer contact fingerprint\n  coffer contact verify bob '12345 67890 ...'\n  coffer contact ls",
		Args:    cobra.NoArgs,
		RunE:    groupHelp,
	}
	c.AddCommand(a.contactAddCmd(), a.contactLsCmd(), a.contactRmCmd(), a.contactFingerprintCmd(), a.contactVerifyCmd())
	return c
}

// contactState is "verified" or "unverified".
func (a *app) contactState(ct *client.Contact) string {
	if ct.Verified {
		return "verified"
	}
	return "unverified"
}

func (a *app) contactAddCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "add USER...",
		Short:   "Pin users' public keys",
		Example: "  coffer contact add bob",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			for _, u := range args {
				ct, err := c.Contact(cmd.Context(), u)
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "%s\t%s\t%s\n", ct.Username, a.contactState(ct), ct.Fingerprint)
				if !ct.Verified {
					a.info("Compare %s's fingerprint with them, then run 'coffer contact verify %s FINGERPRINT'.", u, u)
				}
			}
			return nil
		},
	}
}

func (a *app) contactLsCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "ls",
		Short:   "List pinned contacts (local; no server request)",
		Example: "  coffer contact ls\n  coffer contact ls --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			cs, err := c.Contacts()
			if err != nil {
				return err
			}
			if asJSON {
				type j struct {
					Username    string `json:"username"`
					Account     string `json:"account"`
					Fingerprint string `json:"fingerprint"`
					Verified    bool   `json:"verified"`
				}
				out := make([]j, 0, len(cs))
				for _, ct := range cs {
					out = append(out, j{ct.Username, ct.Account.String(), ct.Fingerprint, ct.Verified})
				}
				return a.printJSON(out)
			}
			t := newTable(a.stdout)
			for _, ct := range cs {
				t.row(ct.Username, a.contactState(ct), ct.Fingerprint)
			}
			return t.flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func (a *app) contactRmCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "rm USER...",
		Short:   "Forget pinned contacts",
		Example: "  coffer contact rm bob",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			for _, u := range args {
				if err := c.RemoveContact(u); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

func (a *app) contactFingerprintCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "fingerprint [USER]",
		Short: "Show a user's fingerprint (yours without USER)",
		Long: `Print the fingerprint (safety number) of USER's public keys, pinning them on first sight, or your
own without USER. Read yours to the other person and compare theirs.`,
		Example: "  coffer contact fingerprint\n  coffer contact fingerprint bob",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			if len(args) == 0 {
				fmt.Fprintln(a.stdout, c.Whoami().Fingerprint)
				return nil
			}
			ct, err := c.Contact(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, ct.Fingerprint)
			if !ct.Verified {
				a.info("%s is not verified yet: compare this with them, then run 'coffer contact verify %s FINGERPRINT'.", args[0], args[0])
			}
			return nil
		},
	}
}

func (a *app) contactVerifyCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "verify USER FINGERPRINT",
		Short:   "Mark a contact verified after comparing fingerprints out of band",
		Example: "  coffer contact verify bob '12345 67890 13579 24680 11223 44556 77889 90011'",
		Args:    cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			ct, err := c.VerifyContact(cmd.Context(), args[0], strings.Join(args[1:], " "))
			if err != nil {
				return err
			}
			a.info("%s is verified (%s).", ct.Username, ct.Fingerprint)
			return nil
		},
	}
}
