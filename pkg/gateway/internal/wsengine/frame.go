package wsengine

import "sync"

// maxWriteChunk is the size beyond which a batch is written in several
// syscalls rather than growing one buffer.
const maxWriteChunk = 64 << 10

// frameBufs recycles the buffers writes are framed in.
var frameBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// putFrameBuf returns buf, framed in *bp, to the pool unless it grew large.
func putFrameBuf(bp *[]byte, buf []byte) {
	if cap(buf) <= 2*maxWriteChunk {
		*bp = buf[:0]
		frameBufs.Put(bp)
	}
}

// appendFrame appends one unmasked, final RFC 6455 frame (a server's
// frames are unmasked; every packet is its own frame, conformance row 9).
func appendFrame(buf []byte, opcode int, payload string) []byte {
	buf = append(buf, 0x80|byte(opcode))
	switch n := len(payload); {
	case n <= 125:
		buf = append(buf, byte(n))
	case n <= 0xffff:
		buf = append(buf, 126, byte(n>>8), byte(n))
	default:
		buf = append(buf, 127, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(buf, payload...)
}
