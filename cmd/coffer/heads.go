package main

import (
	"encoding/hex"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"coffer/client"
)

// addHeadCommands adds `coffer heads` (head gossip, fork resolution: doc/DESIGN.md "Forks and
// freezes").
func (a *app) addHeadCommands(root *cobra.Command) {
	c := a.headsCmd()
	c.GroupID = "account"
	root.AddCommand(c)
}

type deviceHeadJSON struct {
	Device    string `json:"device"`
	Session   string `json:"session"`
	Version   uint64 `json:"version"`
	Hash      string `json:"hash"`
	Published int64  `json:"published"`
	Current   bool   `json:"current"`
}

func (a *app) headsCmd() *cobra.Command {
	var asJSON, resolve bool
	c := &cobra.Command{
		Use:   "heads [PATH]",
		Short: "Compare a tree's head with your other devices and members (fork and freeze check)",
		Long: `Exchange heads with the account's other devices through the server now: publish the latest
head this device verified and check the server's current head and every head the other devices
published against this device's history. Every command also does this at its first listing.

A fork (the server showed two devices diverging histories) or a freeze (it withholds a newer head
another device published) fails with exit code 6. After a fork this device refuses to write until
you run 'coffer heads --resolve-fork', which accepts the server's current history: changes that
exist only on the other branch must be uploaded again from the device that has them. The head's
version and hash can also be compared between devices by hand.

With PATH, the check is for the tree holding PATH: a shared folder's path checks that folder's
history against the heads its other members' devices published.`,
		Example: "  coffer heads\n  coffer heads --json\n  coffer heads --resolve-fork\n  coffer heads /shared/proj",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := a.session(ctx)
			if err != nil {
				return err
			}
			p := "/"
			if len(args) == 1 {
				p = args[0]
			}
			if resolve {
				if err := c.ResolveForkAt(ctx, p); err != nil {
					return err
				}
				a.info("fork resolved: this device now follows the server's current history")
			}
			rep, err := c.CheckHeadsAt(ctx, p)
			if err != nil {
				return err
			}
			return a.printHeads(rep, asJSON)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().BoolVar(&resolve, "resolve-fork", false, "accept the server's current history after a fork")
	return c
}

func (a *app) printHeads(rep *client.HeadsReport, asJSON bool) error {
	if asJSON {
		out := struct {
			Tree    string           `json:"tree"`
			Version uint64           `json:"version"`
			Hash    string           `json:"hash"`
			Devices []deviceHeadJSON `json:"devices"`
		}{Tree: rep.Tree.String(), Version: rep.Version, Hash: hex.EncodeToString(rep.Hash[:]), Devices: []deviceHeadJSON{}}
		for _, d := range rep.Devices {
			out.Devices = append(out.Devices, deviceHeadJSON{Device: d.Device, Session: d.Session, Version: d.Version,
				Hash: hex.EncodeToString(d.Hash[:]), Published: d.Published.Unix(), Current: d.Own})
		}
		return a.printJSON(out)
	}
	fmt.Fprintf(a.stdout, "tree:  %s\nhead:  v%d %s\n", rep.Tree, rep.Version, hex.EncodeToString(rep.Hash[:8]))
	tw := newTable(a.stdout)
	tw.row("SESSION", "VERSION", "HASH", "PUBLISHED", "DEVICE")
	for _, d := range rep.Devices {
		id := d.Session
		if len(id) > 8 {
			id = id[:8]
		}
		if d.Own {
			id += "*"
		}
		tw.row(id, fmt.Sprintf("v%d", d.Version), hex.EncodeToString(d.Hash[:8]),
			d.Published.Local().Format(time.DateTime), d.Device)
	}
	return tw.flush()
}
