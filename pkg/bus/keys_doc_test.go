package bus

import (
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The key tables of docs/redis.md (the first column of every table, where
// key and channel patterns start with <P>) name exactly the keys Keys
// names, so the contract that workers in other languages follow cannot
// drift from the code.
func TestDocKeyTableMatchesKeys(t *testing.T) {
	doc, err := os.ReadFile("../../docs/redis.md")
	if err != nil {
		t.Fatal(err)
	}
	patterns := docKeyPatterns(string(doc))
	if len(patterns) == 0 {
		t.Fatal("no key patterns found in the tables of docs/redis.md")
	}
	k := NewKeys("p:", 8)
	fromDoc := map[string]string{} // key for the sample values -> pattern
	for _, p := range patterns {
		name := fillPattern(p, k)
		if strings.ContainsAny(name, "<>") {
			t.Errorf("docs/redis.md: %s has a placeholder the test does not know", p)
		}
		fromDoc[name] = p
	}
	fromKeys := map[string]string{} // key -> pattern name
	for name, key := range keyNames(k) {
		fromKeys[key] = name
	}
	for _, key := range slices.Sorted(maps.Keys(fromDoc)) {
		if _, ok := fromKeys[key]; !ok {
			t.Errorf("docs/redis.md lists %s (%q), which no Keys method names", fromDoc[key], key)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(fromKeys)) {
		if _, ok := fromDoc[key]; !ok {
			t.Errorf("Keys names %q (pattern %q), which the tables of docs/redis.md do not list", key, fromKeys[key])
		}
	}
}

var docKeySpan = regexp.MustCompile("`(<P>[^`]*)`")

// docKeyPatterns returns the key patterns in the first column of the
// markdown tables of doc.
func docKeyPatterns(doc string) []string {
	var out []string
	for _, line := range strings.Split(doc, "\n") {
		cells := strings.Split(line, "|")
		if !strings.HasPrefix(line, "|") || len(cells) < 3 {
			continue
		}
		for _, m := range docKeySpan.FindAllStringSubmatch(cells[1], -1) {
			out = append(out, m[1])
		}
	}
	return out
}

func TestDocKeyPatterns(t *testing.T) {
	doc := "text `<P>x` here\n| key | type |\n| --- | --- |\n| `<P>a:{sid}` / `<P>b` | set, `<P>not` |\n|`<P>c`|\n"
	if got, want := docKeyPatterns(doc), []string{"<P>a:{sid}", "<P>b", "<P>c"}; !slices.Equal(got, want) {
		t.Fatalf("docKeyPatterns = %q, want %q", got, want)
	}
}

// docs/redis.md quotes the tags of the default partitions as PartitionTags
// makes them.
func TestDocPartitionTags(t *testing.T) {
	doc, err := os.ReadFile("../../docs/redis.md")
	if err != nil {
		t.Fatal(err)
	}
	want := "With 16 partitions the tags are\n`" + strings.Join(PartitionTags(16), " ") + "`."
	if !strings.Contains(string(doc), want) {
		t.Errorf("docs/redis.md does not say %q", want)
	}
}
