package shm_test

import (
	"testing"

	"github.com/shmkit/shmkit/internal/testutil"
)

func TestMain(m *testing.M) {
	testutil.Main(m, map[string]testutil.Role{
		"attach-inherited": roleAttachInherited,
		"attach-named":     roleAttachNamed,
		"array-locked":     roleArrayLocked,
	})
}
