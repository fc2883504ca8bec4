package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// referenceCheck is the straightforward json.Decoder implementation of
// Check, kept as the oracle of the differential fuzz test.
func referenceCheck(data []byte, maxDepth int) error {
	if !utf8.Valid(data) || bytes.Contains(data, replacementChar) {
		return ErrInvalid
	}
	if err := scanDepth(data, maxDepth); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := referenceWalk(dec); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return ErrInvalid
	}
	return nil
}

func referenceWalk(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return ErrInvalid
	}
	switch v := tok.(type) {
	case json.Delim:
		if v == '{' {
			seen := map[string]bool{}
			for dec.More() {
				name, err := dec.Token()
				if err != nil {
					return ErrInvalid
				}
				s := name.(string)
				if strings.ContainsRune(s, utf8.RuneError) {
					return ErrInvalid
				}
				if seen[strings.ToLower(s)] {
					return ErrDuplicateMember
				}
				seen[strings.ToLower(s)] = true
				if err := referenceWalk(dec); err != nil {
					return err
				}
			}
		} else {
			for dec.More() {
				if err := referenceWalk(dec); err != nil {
					return err
				}
			}
		}
		if _, err := dec.Token(); err != nil {
			return ErrInvalid
		}
	case string:
		if strings.ContainsRune(v, utf8.RuneError) {
			return ErrInvalid
		}
	case json.Number:
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil || math.IsInf(f, 0) {
			return ErrInvalid
		}
	}
	return nil
}
