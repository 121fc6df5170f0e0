package manager

import (
	"context"
	"fmt"
)

// Batch collects calls and sends them together: one write, then every
// reply, so n calls cost about one round trip instead of n. Calls run on
// the server in the order added (blocking ones, such as a Get on an empty
// queue, wait there beside the rest). A Batch is for one goroutine.
//
//	b := c.Batch()
//	n := b.Dict("hits").Add("home", 1)
//	b.Dict("last").Set("home", time.Now().Unix())
//	err := b.Send(ctx) // the first error of any call
//	total, err := n.Int()
type Batch struct {
	c     *Client
	calls []*Pending
	slab  []Pending // Pendings are carved from here, a few allocations a batch
}

// Pending is the outcome of one call of a Batch, known after Send.
type Pending struct {
	rq   request
	rs   response
	err  error
	done bool
}

// Err returns the call's error (ErrInvalid before Send).
func (p *Pending) Err() error {
	if !p.done {
		return fmt.Errorf("%w: batch not sent", ErrInvalid)
	}
	return p.err
}

// Int returns the call's integer result (Add's sum, Len).
func (p *Pending) Int() (int64, error) { return p.rs.N, p.Err() }

// OK returns the call's flag (Delete: it was present; CompareAndSwap).
func (p *Pending) OK() (bool, error) { return p.rs.OK, p.Err() }

// Decode decodes the call's value (Get, Pop) into out.
func (p *Pending) Decode(out any) error {
	if err := p.Err(); err != nil {
		return err
	}
	return decode(p.rs.Val, out)
}

// Batch returns an empty batch on c.
func (c *Client) Batch() *Batch { return &Batch{c: c} }

func (b *Batch) add(rq request) *Pending {
	if len(b.slab) == cap(b.slab) {
		// A new block, never a grown one: handed-out pointers stay put.
		b.slab = make([]Pending, 0, max(16, len(b.calls)))
	}
	b.slab = append(b.slab, Pending{rq: rq})
	p := &b.slab[len(b.slab)-1]
	b.calls = append(b.calls, p)
	return p
}

func (b *Batch) addVal(rq request, v any) *Pending {
	val, err := encode(v)
	if err != nil {
		p := b.add(rq)
		p.err, p.done = err, true
		return p
	}
	rq.Val = val
	return b.add(rq)
}

// BatchDict adds calls on a Dict to a batch.
type BatchDict struct {
	b    *Batch
	name string
}

// Dict names the dict the calls are on.
func (b *Batch) Dict(name string) BatchDict { return BatchDict{b, name} }

// Get adds a Get; the value is the Pending's (Decode).
func (d BatchDict) Get(key string) *Pending {
	return d.b.add(request{Op: opGet, Kind: tDict, Obj: d.name, Key: key})
}

// Set adds a Set.
func (d BatchDict) Set(key string, v any) *Pending {
	return d.b.addVal(request{Op: opSet, Kind: tDict, Obj: d.name, Key: key}, v)
}

// Add adds an Add; the sum is the Pending's (Int).
func (d BatchDict) Add(key string, delta int64) *Pending {
	return d.b.add(request{Op: opAdd, Kind: tDict, Obj: d.name, Key: key, N: delta})
}

// Delete adds a Delete; whether the key was present is the Pending's (OK).
func (d BatchDict) Delete(key string) *Pending {
	return d.b.add(request{Op: opDelete, Kind: tDict, Obj: d.name, Key: key})
}

// Put adds a Put on the queue named name (which must exist: see
// Client.Queue).
func (b *Batch) Put(queue string, v any) *Pending {
	return b.addVal(request{Op: opPut, Kind: tQueue, Obj: queue}, v)
}

// Send sends every call not sent yet and waits for their replies until
// ctx ends. It returns the first call's error, if any; each Pending has
// its own. When ctx ends first, the calls whose replies had come keep
// them (a Put that took effect does not look failed) and the others have
// ctx's error (and are undone if they complete later, as a single call's
// are).
func (b *Batch) Send(ctx context.Context) error {
	var todo []*Pending
	var first error
	for _, p := range b.calls {
		if !p.done {
			todo = append(todo, p)
		} else if first == nil && p.err != nil {
			first = p.err // failed when added (its value did not encode)
		}
	}
	b.calls = b.calls[:0]
	reqs := make([]*request, len(todo))
	for i, p := range todo {
		reqs[i] = &p.rq
	}
	res, err := b.c.callMany(ctx, reqs)
	for i, p := range todo {
		p.done = true
		if res != nil { // all, or (ctx ended) those that came and ctx's error for the rest
			p.rs, p.err = res[i].rs, res[i].err
		} else {
			p.err = err
		}
		if first == nil && p.err != nil {
			first = p.err
		}
	}
	return first
}
