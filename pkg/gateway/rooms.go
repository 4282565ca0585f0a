package gateway

import "sync"

// roomIndex knows which streaming connections held here are in which rooms, so that a
// broadcast to a room is fanned out locally. Workers keep it current with
// join and leave route messages.
type roomIndex struct {
	mu    sync.RWMutex
	rooms map[roomKey]map[string]struct{} // room -> sids
	bySID map[string]map[roomKey]struct{} // sid -> rooms, to forget a closed connection
}

type roomKey struct{ ns, room string }

func (x *roomIndex) init() {
	x.rooms = map[roomKey]map[string]struct{}{}
	x.bySID = map[string]map[roomKey]struct{}{}
}

func (x *roomIndex) join(ns, room, sid string) {
	k := roomKey{ns, room}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.rooms[k] == nil {
		x.rooms[k] = map[string]struct{}{}
	}
	x.rooms[k][sid] = struct{}{}
	if x.bySID[sid] == nil {
		x.bySID[sid] = map[roomKey]struct{}{}
	}
	x.bySID[sid][k] = struct{}{}
}

func (x *roomIndex) leave(ns, room, sid string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.remove(roomKey{ns, room}, sid)
}

// leaveNamespace removes sid from every room of namespace ns.
func (x *roomIndex) leaveNamespace(ns, sid string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for k := range x.bySID[sid] {
		if k.ns == ns {
			x.remove(k, sid)
		}
	}
}

func (x *roomIndex) remove(k roomKey, sid string) {
	if m := x.rooms[k]; m != nil {
		delete(m, sid)
		if len(m) == 0 {
			delete(x.rooms, k)
		}
	}
	if m := x.bySID[sid]; m != nil {
		delete(m, k)
		if len(m) == 0 {
			delete(x.bySID, sid)
		}
	}
}

// forget removes a closed connection from every room.
func (x *roomIndex) forget(sid string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for k := range x.bySID[sid] {
		x.remove(k, sid)
	}
}

// members returns the sids in a room.
func (x *roomIndex) members(ns, room string) []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	m := x.rooms[roomKey{ns, room}]
	out := make([]string, 0, len(m))
	for sid := range m {
		out = append(out, sid)
	}
	return out
}
