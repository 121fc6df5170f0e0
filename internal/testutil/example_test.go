package testutil_test

import (
	"context"
	"testing"

	"github.com/shmkit/shmkit/internal/testutil"
)

// A package's TestMain names the roles its children can run; a test
// spawns one, synchronises on its events, and can kill it at that point.
// (Compiled, not run: it needs a TestMain of its own.)
func Example() {
	roles := map[string]testutil.Role{
		"hold": func(ctx context.Context) error {
			testutil.Signal("ready") // the parent's Await returns
			msg, err := testutil.Recv(ctx)
			_ = msg // "stop"
			return err
		},
	}
	_ = roles // in TestMain: testutil.Main(m, roles)

	test := func(t *testing.T) {
		ctx := testutil.Context(t)
		c := testutil.Spawn(t, "hold", testutil.Env("SEG", testutil.Name(t)))
		if err := c.Await(ctx, "ready"); err != nil {
			t.Fatal(err)
		}
		c.Kill() // at exactly the chosen point
	}
	_ = test
}
