// Package sysx holds the few Linux calls that shm needs beyond mapping:
// open-file-description locks (the kernel's proof that a participant is
// alive), memfd creation and sealing, space reservation, and the process
// start time that tells a reused pid apart. Other systems get stubs that
// return errors.ErrUnsupported.
package sysx
