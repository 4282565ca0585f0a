package protocol

import "testing"

var benchEvent = []byte(`5:12+::{"name":"echo","args":[1,"two",{"three":3}]}`)

// A default-namespace event: 0 allocations.
func BenchmarkDecode(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchEvent)))
	for b.Loop() {
		if _, err := Decode(benchEvent); err != nil {
			b.Fatal(err)
		}
	}
}

// A namespaced event: one allocation, the Endpoint string.
func BenchmarkDecodeNamespace(b *testing.B) {
	pkt := []byte(`5:12+:/chat:{"name":"echo","args":[1,"two",{"three":3}]}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(pkt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodePayload(b *testing.B) {
	payload := AppendPayload(nil, benchEvent, []byte("3:::hello 😀 é"), []byte("2::"), benchEvent)
	fn := func([]byte) error { return nil }
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if err := DecodePayload(payload, 1<<20, fn); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendPacket(b *testing.B) {
	p := Packet{Type: Event, ID: 12, HasID: true, AckData: true, Data: benchEvent[7:]}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendPacket(buf[:0], p)
	}
}

func BenchmarkAppendPayload(b *testing.B) {
	packets := [][]byte{benchEvent, []byte("3:::hello 😀 é"), []byte("2::")}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendPayload(buf[:0], packets...)
	}
}

// One allocation: the name string.
func BenchmarkParseEvent(b *testing.B) {
	data := benchEvent[7:]
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, _, err := ParseEvent(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendEvent(b *testing.B) {
	args := []byte(`[1,"two",{"three":3}]`)
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendEvent(buf[:0], "echo", args)
	}
}

func BenchmarkAppendJSString(b *testing.B) {
	s := []byte(`5:::{"name":"chat","args":["hello </script> ` + "\u2028" + ` world 😀 and some more ordinary text"]}`)
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		buf = AppendJSString(buf[:0], s)
	}
}

// Valid input, the case of nearly every packet: 0 allocations.
func BenchmarkRepairUTF8Valid(b *testing.B) {
	s := []byte(`5:::{"name":"chat","args":["hello é€😀 world, and some more ordinary text"]}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		if _, repaired := RepairUTF8(s); repaired {
			b.Fatal("repaired valid input")
		}
	}
}

// A valid string (a packet on its way to a client): 0 allocations.
func BenchmarkRepairUTF8StringValid(b *testing.B) {
	s := `5:::{"name":"chat","args":["hello é€😀 world, and some more ordinary text"]}`
	b.ReportAllocs()
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		if _, repaired := RepairUTF8String(s); repaired {
			b.Fatal("repaired valid input")
		}
	}
}

// Invalid input: one allocation, the repaired copy.
func BenchmarkRepairUTF8Invalid(b *testing.B) {
	s := []byte(`5:1+::{"name":"echo","args":["` + "\xff\xfe\xc3\x28\xe2\x80" + ` and some ordinary text"]}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		RepairUTF8(s)
	}
}

func BenchmarkDecodeJSONPBody(b *testing.B) {
	d := AppendJSString(nil, benchEvent)
	b.ReportAllocs()
	b.SetBytes(int64(len(d)))
	for b.Loop() {
		if _, err := DecodeJSONPBody(d); err != nil {
			b.Fatal(err)
		}
	}
}
