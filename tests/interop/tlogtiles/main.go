// Command tlogtiles reads a cbmnet hub's C2SP tlog-tiles with Go's own tile reader
// (golang.org/x/mod/sumdb/tlog, the code behind Go's checksum database) and verifies:
// the checkpoint's signature (golang.org/x/mod/sumdb/note), the inclusion of every
// entry in it, and its consistency with every earlier checkpoint the hub lists.
//
// Usage: tlogtiles HUB_URL LOG_VKEY [BEARER_TOKEN]
// Prints one JSON object; exits 1 on the first failure, naming it.
package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

var hub, token string

func get(path string) []byte {
	req, err := http.NewRequest("GET", hub+path, nil)
	must(err, path)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	must(err, path)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	must(err, path)
	if resp.StatusCode != 200 {
		fail("GET %s: %d %s", path, resp.StatusCode, body)
	}
	return body
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "tlogtiles: "+format+"\n", args...)
	os.Exit(1)
}

func must(err error, what string) {
	if err != nil {
		fail("%s: %v", what, err)
	}
}

// tree opens a signed checkpoint with the log's key and reads its size and root.
func tree(signed []byte, verifier note.Verifier) tlog.Tree {
	n, err := note.Open(signed, note.VerifierList(verifier))
	must(err, "checkpoint signature")
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 {
		fail("checkpoint: %d lines", len(lines))
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	must(err, "checkpoint size")
	raw, err := base64.StdEncoding.DecodeString(lines[2])
	must(err, "checkpoint root")
	if len(raw) != tlog.HashSize {
		fail("checkpoint root: %d bytes", len(raw))
	}
	var h tlog.Hash
	copy(h[:], raw)
	return tlog.Tree{N: size, Hash: h}
}

// tiles serves Go's tile reader from the hub: Go names a tile tile/8/L/N[.p/W];
// C2SP tlog-tiles drops the height (always 8) from the path.
type tiles struct{ reads int }

func (t *tiles) Height() int { return 8 }

func (t *tiles) ReadTiles(ts []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(ts))
	for i, tile := range ts {
		out[i] = get("/v1/tlog/tile/" + strings.TrimPrefix(tile.Path(), "tile/8/"))
		t.reads++
	}
	return out, nil
}

func (t *tiles) SaveTiles([]tlog.Tile, [][]byte) {}

func main() {
	if len(os.Args) < 3 {
		fail("usage: tlogtiles HUB_URL LOG_VKEY [BEARER_TOKEN]")
	}
	hub = strings.TrimRight(os.Args[1], "/")
	if len(os.Args) > 3 {
		token = os.Args[3]
	}
	verifier, err := note.NewVerifier(os.Args[2])
	must(err, "log verifier key")
	latest := tree(get("/v1/tlog/checkpoint"), verifier)
	reader := &tiles{}
	hashes := tlog.TileHashReader(latest, reader)

	// Every entry: from the entry bundles where this reader may read it (Go hashes the
	// bytes), else the level-0 tile's leaf hash (Go checks it against the root).
	read, withheld := 0, 0
	for start := int64(0); start < latest.N; start += 256 {
		w := latest.N - start
		if w > 256 {
			w = 256
		}
		// Go names an entry bundle as its "data" tile: tile/8/data/N[.p/W].
		data := tlog.Tile{H: 8, L: -1, N: start / 256, W: int(w)}.Path()
		path := "/v1/tlog/tile/entries/" + strings.TrimPrefix(data, "tile/8/data/")
		bundle := get(path)
		for k := int64(0); k < w; k++ {
			if len(bundle) < 2 {
				fail("bundle %s: short at entry %d", path, k)
			}
			size := int(bundle[0])<<8 | int(bundle[1])
			if len(bundle) < 2+size {
				fail("bundle %s: entry %d runs past the end", path, k)
			}
			n := start + k
			var leaf tlog.Hash
			if size > 0 {
				leaf = tlog.RecordHash(bundle[2 : 2+size])
				read++
			} else {
				hs, err := hashes.ReadHashes([]int64{tlog.StoredHashIndex(0, n)})
				must(err, fmt.Sprintf("leaf hash %d", n))
				leaf = hs[0]
				withheld++
			}
			proof, err := tlog.ProveRecord(latest.N, n, hashes)
			must(err, fmt.Sprintf("inclusion proof of %d", n))
			must(tlog.CheckRecord(proof, latest.N, latest.Hash, n, leaf), fmt.Sprintf("inclusion of %d", n))
			bundle = bundle[2+size:]
		}
		if len(bundle) != 0 {
			fail("bundle %s: %d bytes after its %d entries", path, len(bundle), w)
		}
	}

	// Every earlier checkpoint the hub lists: consistent with the latest.
	var listed struct {
		Checkpoints []struct {
			Size int64  `json:"size"`
			Note string `json:"note"`
		} `json:"checkpoints"`
	}
	consistent := 0
	after := -1
	for {
		must(json.Unmarshal(get(fmt.Sprintf("/v1/log/checkpoints?after=%d&limit=100", after)), &listed), "checkpoints")
		if len(listed.Checkpoints) == 0 {
			break
		}
		for _, cp := range listed.Checkpoints {
			old := tree([]byte(cp.Note), verifier)
			if old.N > latest.N || old.N == 0 {
				continue
			}
			proof, err := tlog.ProveTree(latest.N, old.N, hashes)
			must(err, fmt.Sprintf("consistency proof %d -> %d", old.N, latest.N))
			must(tlog.CheckTree(proof, latest.N, latest.Hash, old.N, old.Hash), fmt.Sprintf("consistency %d -> %d", old.N, latest.N))
			consistent++
		}
		after += len(listed.Checkpoints)
		listed.Checkpoints = nil
	}
	out, _ := json.Marshal(map[string]any{
		"size": latest.N, "inclusion_verified": read + withheld, "entries_read": read,
		"entries_withheld": withheld, "consistency_verified": consistent, "tiles_read": reader.reads,
	})
	fmt.Println(string(out))
}
