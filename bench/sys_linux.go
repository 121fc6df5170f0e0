package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// setDeathSignal makes the kernel kill a child when the runner dies, even
// by SIGKILL. (It fires when the thread that started the child exits; Go
// threads exit only when a locked goroutine ends locked, which the runner
// never lets happen.)
func setDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }

// allowedCPUs lists the CPUs this process may run on.
func allowedCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	var cpus []int
	for i := 0; i < len(set)*64 && len(cpus) < set.Count(); i++ {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	return cpus, nil
}

// pinProcess sets the affinity of every thread of this process to cpus.
// Threads created later inherit it from their creator.
func pinProcess(cpus []int) error {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("pin: %w", err)
	}
	var errs []error
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("sched_setaffinity %d: %w", tid, err))
		}
	}
	return errors.Join(errs...)
}

// ---- POSIX message queues (raw syscalls: x/sys/unix has no wrappers) ----

// mqAttr is struct mq_attr: four longs and padding (long is Go's int on
// every Linux port).
type mqAttr struct {
	Flags, MaxMsg, MsgSize, CurMsgs int
	_                               [4]int
}

// mqSlice bounds each blocking mq call, so that cancellation is seen.
const mqSlice = 100 * time.Millisecond

var mqSeq atomic.Uint64

// mqCreate creates a message queue for messages of size bytes, unlinks its
// name at once (the descriptor keeps it alive, and a child inherits it),
// and returns the descriptor as a file.
func mqCreate(size int) (*os.File, error) {
	maxSize, err := readProcInt("/proc/sys/fs/mqueue/msgsize_max")
	if err != nil {
		return nil, unavailable("POSIX message queues not supported (%v)", err)
	}
	if size > maxSize {
		return nil, unavailable("%d-byte messages exceed /proc/sys/fs/mqueue/msgsize_max (%d)", size, maxSize)
	}
	depth := 10
	if m, err := readProcInt("/proc/sys/fs/mqueue/msg_max"); err == nil && m < depth {
		depth = m
	}
	name := fmt.Sprintf("shmkit-bench-%d-%d", os.Getpid(), mqSeq.Add(1))
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return nil, err
	}
	attr := mqAttr{MaxMsg: depth, MsgSize: size}
	syscall.ForkLock.RLock()
	r, _, e := unix.Syscall6(unix.SYS_MQ_OPEN, uintptr(unsafe.Pointer(p)),
		uintptr(unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC), 0o600, uintptr(unsafe.Pointer(&attr)), 0, 0)
	syscall.ForkLock.RUnlock()
	if e != 0 {
		switch e {
		case unix.ENOSYS, unix.EPERM, unix.EACCES, unix.EMFILE, unix.ENOMEM, unix.ENOSPC, unix.EINVAL:
			return nil, unavailable("mq_open: %v", e)
		}
		return nil, fmt.Errorf("mq_open: %w", e)
	}
	unix.Syscall(unix.SYS_MQ_UNLINK, uintptr(unsafe.Pointer(p)), 0, 0)
	return os.NewFile(r, "mqueue"), nil
}

// mqDeadline is the absolute CLOCK_REALTIME timeout of one mq call.
func mqDeadline() *unix.Timespec {
	ts := unix.NsecToTimespec(time.Now().Add(mqSlice).UnixNano())
	return &ts
}

// mqCall retries a timed mq call until it succeeds, fails, or ctx ends.
func mqCall(ctx context.Context, call func(*unix.Timespec) (uintptr, syscall.Errno)) (int, error) {
	for {
		r, e := call(mqDeadline())
		switch e {
		case 0:
			return int(r), nil
		case unix.ETIMEDOUT, unix.EINTR:
			if err := ctx.Err(); err != nil {
				return 0, context.Cause(ctx)
			}
		default:
			return 0, e
		}
	}
}

type mqEP struct{ out, in *os.File }

func (e mqEP) send(ctx context.Context, f []byte) error {
	m := f[headroom:]
	fd := e.out.Fd()
	_, err := mqCall(ctx, func(ts *unix.Timespec) (uintptr, syscall.Errno) {
		r, _, e := unix.Syscall6(unix.SYS_MQ_TIMEDSEND, fd, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), 0, uintptr(unsafe.Pointer(ts)), 0)
		return r, e
	})
	if err != nil {
		return fmt.Errorf("mq_timedsend: %w", err)
	}
	return nil
}

func (e mqEP) recv(ctx context.Context, p []byte) (int, error) {
	fd := e.in.Fd()
	n, err := mqCall(ctx, func(ts *unix.Timespec) (uintptr, syscall.Errno) {
		r, _, e := unix.Syscall6(unix.SYS_MQ_TIMEDRECEIVE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), 0, uintptr(unsafe.Pointer(ts)), 0)
		return r, e
	})
	if err != nil {
		return 0, fmt.Errorf("mq_timedreceive: %w", err)
	}
	return n, nil
}

func (e mqEP) interrupt() {} // calls are timed slices that watch ctx

func (e mqEP) close() error {
	var errs []error
	for _, f := range []*os.File{e.out, e.in} {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	return errors.Join(errs...)
}

func setupMQ(s cellSpec) (*setup, error) {
	fwd, err := mqCreate(s.Size)
	if err != nil {
		return nil, err
	}
	g, err := dupFile(fwd)
	if err != nil {
		fwd.Close()
		return nil, err
	}
	st := &setup{eps: []endpoint{mqEP{out: fwd}}, files: []*os.File{g}}
	if !s.rtt() {
		return st, nil
	}
	back, err := mqCreate(s.Size)
	if err != nil {
		st.closeAll()
		return nil, err
	}
	h, err := dupFile(back)
	if err != nil {
		back.Close()
		st.closeAll()
		return nil, err
	}
	st.eps[0] = mqEP{out: fwd, in: back}
	st.files = append(st.files, h)
	return st, nil
}

func attachMQ(s cellSpec, files []*os.File) ([]endpoint, error) {
	in, err := dupFile(files[0])
	if err != nil {
		return nil, err
	}
	ep := mqEP{in: in}
	if s.rtt() {
		if ep.out, err = dupFile(files[1]); err != nil {
			in.Close()
			return nil, err
		}
	}
	return []endpoint{ep}, nil
}

// dupFile duplicates f's descriptor, close-on-exec.
func dupFile(f *os.File) (*os.File, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dup: %w", err)
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}
