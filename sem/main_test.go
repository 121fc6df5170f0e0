package sem_test

import (
	"testing"

	"github.com/shmkit/shmkit/internal/testutil"
)

func TestMain(m *testing.M) {
	testutil.Main(m, map[string]testutil.Role{
		"count-locked":   roleCountLocked,
		"count-atomic":   roleCountAtomic,
		"event-wait":     roleEventWait,
		"sem-admit":      roleSemAdmit,
		"barrier-rounds": roleBarrierRounds,
		"barrier-wait":   roleBarrierWait,
		"cond-consumer":  roleCondConsumer,
		"hold-lock":      roleHoldLock,
		"stress":         roleStress,
		"sleep-on":       roleSleepOn,
	})
}
