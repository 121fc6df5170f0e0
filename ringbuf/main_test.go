package ringbuf

import (
	"testing"

	"github.com/shmkit/shmkit/internal/testutil"
)

// roles holds the child-process roles of this package's tests. Each test
// file registers its own in an init function, so files stay independent.
var roles = map[string]testutil.Role{}

func TestMain(m *testing.M) { testutil.Main(m, roles) }
