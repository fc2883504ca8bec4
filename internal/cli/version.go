package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/mandate-dev/mandate/internal/buildinfo"
)

func newVersionCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version and the commit this binary was built from",
		Long: `Print the version and the commit this binary was built from, as the Go
toolchain recorded them: a tag or a pseudo-version (+dirty when the checkout
had uncommitted changes), the commit ("modified" likewise), and the Go
release. GET /healthz answers the version and the commit.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintln(stdout, "mandate", buildinfo.Read())
			return err
		},
	}
}
