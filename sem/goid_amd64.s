#include "textflag.h"

// func getg() uintptr: the address of the calling goroutine's g, kept in
// thread-local storage by the runtime.
TEXT ·getg(SB),NOSPLIT,$0-8
	MOVQ (TLS), AX
	MOVQ AX, ret+0(FP)
	RET
