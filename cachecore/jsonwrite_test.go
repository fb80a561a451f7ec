package cachecore

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/hfcachefs/hfcachefs/internal/testcache"
)

// WriteJSON must say exactly what encoding/json says of Document.
func TestWriteJSONMatchesDocument(t *testing.T) {
	for _, dir := range []string{testcache.Basic(t), testcache.Cases(t) + "/unknown-repo-type", testcache.Cases(t) + "/incomplete-blobs"} {
		info := mustScan(t, dir)
		info.Notices = append(info.Notices, Notice{Path: "odd \"name\"\n\x01\xff<&> \u2028", Kind: "k", Message: "m"})
		var streamed bytes.Buffer
		if err := info.WriteJSON(&streamed); err != nil {
			t.Fatal(err)
		}
		var got, want any
		if err := json.Unmarshal(streamed.Bytes(), &got); err != nil {
			t.Fatalf("%v\n%s", err, streamed.String())
		}
		ref, _ := json.Marshal(info.Document())
		_ = json.Unmarshal(ref, &want)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: streamed JSON differs from the document", dir)
		}
	}
}
