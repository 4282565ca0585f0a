package protocol

import "testing"

var benchEvent = []byte(`5:12+::{"name":"echo","args":[1,"two",{"three":3}]}`)

func BenchmarkDecode(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(benchEvent); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodePayload(b *testing.B) {
	payload := AppendPayload(nil, benchEvent, []byte("3:::hello 😀"), []byte("2::"), benchEvent)
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
	p := Packet{Type: Event, ID: 12, HasID: true, AckData: true, Data: benchEvent[8:]}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendPacket(buf[:0], p)
	}
}

func BenchmarkAppendPayload(b *testing.B) {
	packets := [][]byte{benchEvent, []byte("3:::hello 😀"), []byte("2::")}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendPayload(buf[:0], packets...)
	}
}

func BenchmarkParseEvent(b *testing.B) {
	data := benchEvent[7:]
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ParseEvent(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendJSString(b *testing.B) {
	s := []byte(`5:::{"name":"chat","args":["hello </script> \u2028 world 😀"]}`)
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendJSString(buf[:0], s)
	}
}
