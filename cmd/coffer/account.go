package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"coffer/client"
)

func (a *app) accountCommands() []*cobra.Command {
	return []*cobra.Command{
		a.signupCmd(), a.loginCmd(), a.logoutCmd(), a.whoamiCmd(), a.passwdCmd(),
		a.recoveryKeyCmd(), a.sessionsCmd(),
	}
}

func (a *app) signupCmd() *cobra.Command {
	var invite string
	c := &cobra.Command{
		Use:   "signup NAME",
		Short: "Create an account and log in",
		Long: `Create an account on the server and log in. The password is read from --password-file or
COFFER_PASSWORD, or prompted for twice on the terminal. The account's recovery key is printed once:
store it offline; it is the only way back in if the password is lost.`,
		Example: "  coffer signup alice\n  coffer --server https://drive.example.org signup alice --invite 7Q2M-...",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cfg, err := a.clientConfig(a.loginServer())
			if err != nil {
				return err
			}
			pw, err := a.password("Password: ", true)
			if err != nil {
				return err
			}
			prev := a.previousSession(ctx)
			c, err := client.Signup(ctx, cfg, client.SignupOptions{Username: args[0], Password: pw, Invite: invite, Device: device()})
			if err != nil {
				return err
			}
			a.endPrevious(ctx, prev)
			if err := c.Save(); err != nil {
				return fmt.Errorf("save session: %w", err)
			}
			rk := c.RecoveryKey().String()
			if a.quiet {
				fmt.Fprintln(a.stdout, rk)
				return nil
			}
			fmt.Fprintf(a.stdout, "Signed up and logged in as %s on %s.\n\n", args[0], cfg.Server)
			fmt.Fprintf(a.stdout, "Your recovery key:\n\n    %s\n\n", rk)
			fmt.Fprintln(a.stdout, "Store it now, offline (on paper or in a password manager), away from this machine.")
			fmt.Fprintln(a.stdout, "If you forget your password, it is the only way to your files: nobody, not even the")
			fmt.Fprintln(a.stdout, "server's operator, can reset it. Anyone who has it can take over your account.")
			return nil
		},
	}
	c.Flags().StringVar(&invite, "invite", "", "invite code (required by invite-only servers; from 'coffer admin invite')")
	return c
}

func (a *app) loginCmd() *cobra.Command {
	var recovery bool
	c := &cobra.Command{
		Use:   "login NAME",
		Short: "Log in and save the session",
		Long: `Log in and save the session in the client state directory (COFFER_CONFIG_DIR).

With --recovery-key, log in with the account's recovery key instead of the password and set a new
password: the key comes from COFFER_RECOVERY_KEY, a prompt on the terminal, or the first line of
stdin; the new password from --password-file, COFFER_PASSWORD or a prompt.`,
		Example: "  coffer login alice\n  COFFER_PASSWORD=... coffer --server http://nas:8420 login alice\n  coffer login alice --recovery-key",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cfg, err := a.clientConfig(a.loginServer())
			if err != nil {
				return err
			}
			prev := a.previousSession(ctx)
			var c *client.Client
			if recovery {
				rk, err := a.recoveryKey()
				if err != nil {
					return err
				}
				pw, err := a.password("New password: ", true)
				if err != nil {
					return err
				}
				c, err = client.LoginRecovery(ctx, cfg, args[0], rk, pw, device())
				if err != nil {
					return err
				}
			} else {
				pw, err := a.password("Password: ", false)
				if err != nil {
					return err
				}
				c, err = client.Login(ctx, cfg, args[0], pw, device())
				if err != nil {
					return err
				}
			}
			a.endPrevious(ctx, prev)
			if err := c.Save(); err != nil {
				return fmt.Errorf("save session: %w", err)
			}
			if recovery {
				a.info("Logged in as %s with the recovery key; the new password is set.", args[0])
			} else {
				a.info("Logged in as %s.", args[0])
			}
			return nil
		},
	}
	c.Flags().BoolVar(&recovery, "recovery-key", false, "log in with the recovery key and set a new password")
	return c
}

func (a *app) logoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "logout",
		Short:   "Revoke this session and forget it",
		Long:    "Revoke this session on the server and delete the saved session. Verified state (for rollback detection) is kept.",
		Example: "  coffer logout",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.session(cmd.Context())
			if errors.Is(err, client.ErrSession) {
				// The server already ended the session (revoked or expired): only forget it here.
				dir, derr := a.configDir()
				if derr != nil {
					return derr
				}
				if rerr := os.Remove(filepath.Join(dir, "session.json")); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
					return fmt.Errorf("forget session: %w", rerr)
				}
				a.info("The session had already ended on the server; logged out.")
				return nil
			}
			if err != nil {
				return err
			}
			if err := c.Logout(cmd.Context()); err != nil {
				return err
			}
			a.info("Logged out.")
			return nil
		},
	}
}

func (a *app) whoamiCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "whoami",
		Short:   "Show the logged-in account",
		Long:    "Show the logged-in account: name, account ID, server and the public-key fingerprint (compare it out of band before sharing).",
		Example: "  coffer whoami\n  coffer whoami --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			id := c.Whoami()
			if asJSON {
				return a.printJSON(map[string]string{
					"username": id.Username, "account": id.Account.String(),
					"server": id.Server, "fingerprint": id.Fingerprint,
				})
			}
			fmt.Fprintf(a.stdout, "username:     %s\naccount:      %s\nserver:       %s\nfingerprint:  %s\n",
				id.Username, id.Account, id.Server, id.Fingerprint)
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func (a *app) passwdCmd() *cobra.Command {
	var newFile string
	c := &cobra.Command{
		Use:   "passwd",
		Short: "Change the password",
		Long: `Change the password: the master key is re-wrapped under the new password; no file is
re-encrypted. The current password comes from --password-file, COFFER_PASSWORD or a prompt; the new
one from --new-password-file, COFFER_NEW_PASSWORD or a prompt (asked twice).`,
		Example: "  coffer passwd\n  COFFER_PASSWORD=old COFFER_NEW_PASSWORD=new coffer passwd",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			old, err := a.password("Current password: ", false)
			if err != nil {
				return err
			}
			pw, err := a.newPassword(newFile)
			if err != nil {
				return err
			}
			if err := c.ChangePassword(cmd.Context(), old, pw); err != nil {
				return err
			}
			if err := c.Save(); err != nil {
				return fmt.Errorf("save session: %w", err)
			}
			a.info("Password changed.")
			return nil
		},
	}
	c.Flags().StringVar(&newFile, "new-password-file", "", "read the new password from this file (env COFFER_NEW_PASSWORD holds it directly)")
	return c
}

func (a *app) recoveryKeyCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "recovery-key",
		Short:   "Print the account's recovery key",
		Long:    "Print the account's recovery key. Store it offline: with it anyone can take over the account.",
		Example: "  coffer recovery-key",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, c.RecoveryKey().String())
			return nil
		},
	}
}

func (a *app) sessionsCmd() *cobra.Command {
	var asJSON bool
	ls := &cobra.Command{
		Use:     "ls",
		Short:   "List the account's sessions",
		Example: "  coffer sessions ls\n  coffer sessions ls --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			ss, err := c.Sessions(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				out := make([]sessionJSON, 0, len(ss))
				for _, s := range ss {
					out = append(out, sessionJSON{ID: s.ID, Device: s.Device, Created: unixTime(s.Created),
						LastUsed: unixTime(s.LastUsed), Current: s.Current})
				}
				return a.printJSON(out)
			}
			tw := newTable(a.stdout)
			tw.row("ID", "CREATED", "LAST USED", "DEVICE")
			for _, s := range ss {
				id := s.ID
				if s.Current {
					id += " *"
				}
				tw.row(id, humanTime(unixTime(s.Created)), humanTime(unixTime(s.LastUsed)), s.Device)
			}
			return tw.flush()
		},
	}
	ls.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	revoke := &cobra.Command{
		Use:     "revoke ID",
		Short:   "Revoke a session (log that device out)",
		Example: "  coffer sessions revoke 3f9a0c...",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			if err := c.RevokeSession(cmd.Context(), args[0]); err != nil {
				return err
			}
			a.info("Session %s revoked.", args[0])
			return nil
		},
	}
	c := &cobra.Command{
		Use:     "sessions",
		Short:   "List or revoke sessions",
		Example: "  coffer sessions ls\n  coffer sessions revoke ID",
		Args:    cobra.NoArgs,
		RunE:    groupHelp,
	}
	c.AddCommand(ls, revoke)
	return c
}

// sessionJSON is one session in `sessions ls --json`.
type sessionJSON struct {
	ID       string    `json:"id"`
	Device   string    `json:"device"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used"`
	Current  bool      `json:"current"`
}

func unixTime(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

// previousSession resumes the saved session, if any, before a login replaces it (nil if there is
// none or it is no longer valid).
func (a *app) previousSession(ctx context.Context) *client.Client {
	cfg, err := a.clientConfig("")
	if err != nil {
		return nil
	}
	c, err := client.Resume(ctx, cfg)
	if err != nil {
		return nil
	}
	return c
}

// endPrevious revokes the session a new login replaced, so it does not linger on the server
// forgotten by every device. Best effort: the new session is already saved.
func (a *app) endPrevious(ctx context.Context, prev *client.Client) {
	if prev != nil {
		_ = prev.Logout(ctx)
	}
}
