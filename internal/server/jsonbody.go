package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"

	"github.com/mandate-dev/mandate/oauth"
	"github.com/mandate-dev/mandate/strictjson"
)

// maxBodyDepth bounds the nesting of a JSON request body.
const maxBodyDepth = 16

// decodeJSON reads a bounded JSON request body, which must be one object,
// into v (a pointer to a struct), as strictly as the tokens are read
// (THREATS T88): a member v does not name exactly (an unknown one, or a
// known one in another case, which encoding/json alone would take) and a
// member that appears twice in one object, in any case (encoding/json
// would keep the last), are refused with 400 naming the member. Nothing
// has been changed when it refuses: handlers decode before they act.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		return malformedJSON(err)
	}
	if err := strictjson.Check(body, maxBodyDepth); err != nil {
		var me *strictjson.MemberError
		if errors.As(err, &me) {
			return oauth.InvalidRequest("json_member_duplicate",
				"member '"+me.Name+"' appears more than once (member names are compared without case)", err)
		}
		return malformedJSON(err)
	}
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return oauth.InvalidRequest("malformed_json", "the request body must be a JSON object", nil)
	}
	if err := exactMembers(body, reflect.TypeOf(v)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return malformedJSON(err)
	}
	return nil
}

func malformedJSON(err error) error {
	return oauth.InvalidRequest("malformed_json", "the request body is not the expected JSON", err)
}

// unmarshalerType is json.Unmarshaler: a type that reads its own JSON
// (time.Time, json.RawMessage) is not looked into.
var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// exactMembers checks that every member name of the objects in data that
// decode into a struct of t is exactly the JSON name of one of its
// fields, recursing through pointers, slices, arrays and map values. data
// has passed strictjson.Check. Anonymous (embedded) fields are not
// flattened: request bodies do not use them.
func exactMembers(data []byte, t reflect.Type) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType) {
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		members, ok := objectMembers(data)
		if !ok {
			return nil // null or a mismatched type: Decode answers it
		}
		fields := jsonFields(t)
		for _, m := range members {
			ft, known := fields[m.name]
			if !known {
				return unknownMember(m.name, fields)
			}
			if err := exactMembers(m.value, ft); err != nil {
				return err
			}
		}
	case reflect.Map:
		members, _ := objectMembers(data)
		for _, m := range members {
			if err := exactMembers(m.value, t.Elem()); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		var items []json.RawMessage
		if json.Unmarshal(data, &items) != nil {
			return nil
		}
		for _, item := range items {
			if err := exactMembers(item, t.Elem()); err != nil {
				return err
			}
		}
	}
	return nil
}

// jsonMember is one name and value of a JSON object.
type jsonMember struct {
	name  string
	value json.RawMessage
}

// objectMembers returns the members of the JSON object data in order; ok
// is false when data is not an object.
func objectMembers(data []byte) (members []jsonMember, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	for dec.More() {
		tok, err := dec.Token()
		name, isName := tok.(string)
		if err != nil || !isName {
			return nil, false
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, false
		}
		members = append(members, jsonMember{name: name, value: value})
	}
	return members, true
}

// jsonFields maps the JSON names of t's exported fields to their types,
// as encoding/json names them (the tag's name, else the field's).
func jsonFields(t reflect.Type) map[string]reflect.Type {
	fields := make(map[string]reflect.Type, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		fields[name] = f.Type
	}
	return fields
}

// unknownMember is the refusal of a member name no field has; a name that
// differs from a field's only in case says so.
func unknownMember(name string, fields map[string]reflect.Type) error {
	if len(name) > 64 {
		name = name[:64]
	}
	for known := range fields {
		if strings.EqualFold(known, name) {
			return oauth.InvalidRequest("json_member_unknown",
				"unknown member '"+name+"': member names are case-sensitive (the member is '"+known+"')", nil)
		}
	}
	return oauth.InvalidRequest("json_member_unknown", "unknown member '"+name+"'", nil)
}
