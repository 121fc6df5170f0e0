// Package manager serves shared objects — dicts, lists, queues, values,
// locks, semaphores, events and barriers — to many client processes over
// a unix or TCP socket: Python's multiprocessing.Manager, without pickle,
// without a connection per proxy, and with locks released when their
// holder dies.
//
// A server is embedded with Serve (or NewServer and Server.Serve) on any
// net.Listener; ListenUnix makes the listener a local server should use.
// Clients connect with Dial and name the objects they share:
//
//	c, err := manager.Dial(ctx, "unix:/run/app/mgr.sock", manager.Options{Key: key})
//	n, err := c.Dict("stats").Add(ctx, "requests", 1) // atomic on the server
//
// Start runs a server in a child process of its own (which exits when its
// parent does, however it dies) and returns it with a connected client.
// The typed forms NewDictOf, NewQueueOf, NewValueOf and NewListOf return
// values instead of decoding into pointers:
//
//	jobs, err := manager.NewQueueOf[Job](ctx, c, "jobs", 1000)
//	j, err := jobs.Get(ctx) // a Job
//
// Client.Batch sends many calls in one write and waits for their replies
// together (redis's pipelining).
//
// # Security
//
// Both sides prove knowledge of Options.Key (at least MinKeyLen bytes) by
// a mutual HMAC-SHA256 challenge-response before anything is served (see
// auth.go): exactly one digest is accepted and its name is inside the
// MAC'd message, MACs are compared with hmac.Equal, the server's fresh
// nonce defeats replay and distinct labels defeat reflection. Every frame
// read before the handshake succeeded is limited to 256 bytes and the
// handshake to Options.HandshakeTimeout. A unix-socket peer must run as
// this user (SO_PEERCRED); ListenUnix puts the socket (mode 0600) in a
// directory of mode 0700 and refuses abstract addresses. Values use a
// data-only codec (CBOR: numbers, strings, bytes, arrays, maps; tags,
// indefinite lengths and deep nesting refused): no code or types travel,
// and the server decodes no value but the integers Add updates.
//
// # Protocol
//
// One connection per client carries every call of all its proxies.
// A frame is
//
//	length uint32 BE (of what follows) | version 1 | kind | id uint64 BE | body
//
// with the length bounded by Options.MaxFrame (DefaultMaxFrame) and
// checked before anything is allocated. Kinds: hello, auth and welcome
// (the handshake), call (client to server: a request, a CBOR array of
// operation, object type, name, key, value, expected value, integer
// argument, values, keys), reply (server to client: code, message, value,
// integer, flag, values, keys) and cancel (the client stops waiting for
// call id). Bodies are CBOR (RFC 8949) with the shortest heads, nil as
// null, no tags and no indefinite lengths; the body must be one whole
// array of exactly those fields. Replies to requests that arrived
// together go out in one write. Replies carry the id of their call and come in any order: a
// call that must wait (Queue.Get on an empty queue, Lock.Acquire of a held
// lock, Event.Wait, Barrier.Wait, Queue.Join) waits on the server beside
// the others, so calls pipeline and a blocked one stalls nothing else. A
// connection has at most Options.MaxPending waiting calls, and replies
// queued for a client that does not read them are bounded (64 MiB): past
// that it is cut. The server holds at most Options.MaxConns connections.
//
// Transports: the same frames over any net.Conn. A client on a unix
// socket asks, after the handshake, to move to a ringbuf Pipe whose memfd
// the server sends with SCM_RIGHTS; the socket stays open as the
// lifeline. Options.NoSharedMemory on either side keeps the connection on
// the socket.
//
// When a caller's ctx ends, the call returns ctx's error and the server is
// told to stop waiting; should the server have completed it meanwhile, a
// lock or semaphore it acquired is released and a message it got is put
// back at the head of its queue, so neither is lost.
//
// # From Python
//
//	Python (multiprocessing.Manager)      shmkit manager
//	m = Manager(); m.start()              Serve(ctx, ln, opts) in a server process; Dial in clients
//	d = m.dict(); d[k] = v; d[k]          c.Dict(name).Set(ctx, k, v); Get(ctx, k, &out)
//	d[k] += 1  (racy: get, then set)      Dict.Add(ctx, k, 1) (atomic on the server)
//	del d[k]; len(d); d.keys(); d.items() Delete; Len; Keys (sorted); Items (one snapshot)
//	d.update(); d.pop(); d.setdefault()   Update (atomic); Pop; SetDefault
//	(none)                                Dict.CompareAndSwap
//	l = m.list(); append, extend,         c.List(name): Append, Extend, Get, Set, Insert,
//	  l[i], l[i] = v, insert, pop,          Pop, Remove, Len, Slice
//	  remove, len, l[a:b]
//	q = m.Queue(); m.JoinableQueue()      c.Queue(ctx, name, capacity): Put, Get (ctx), TryPut,
//	                                        TryGet, Len, TaskDone, Join
//	m.Value('i', 0)                       c.Value(name): Get, Set, Add, CompareAndSwap
//	m.Lock(); m.RLock()                   c.Lock(name), c.RLock(name): Acquire (ctx),
//	                                        TryAcquire, Release; freed when the holder's
//	                                        connection drops, the next holder gets ErrOwnerDead
//	m.Semaphore(n)                        c.Semaphore(ctx, name, n)
//	m.Event()                             c.Event(name): Set, Clear, IsSet, Wait (ctx)
//	m.Barrier(n)                          c.Barrier(ctx, name, n): Wait (ctx), Abort, Reset
//	m.Namespace()                         c.Namespace(name): a Dict of attributes
//
// What differs: objects are named, and every client that uses a name
// shares the object (Python passes proxies); Dict keys are strings;
// values are data, not arbitrary picklable objects; a Python manager Lock
// held by a process that dies stays held forever, here it is released;
// blocking calls take a context instead of a timeout. The client does not
// reconnect by itself: after a broken connection calls fail with
// ErrClosed, and nothing is replayed.
package manager
