package config

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// maxDecodeProblems bounds the problems decoding reports: each one costs a
// decoding pass, and past a few dozen the file is better fixed first.
const maxDecodeProblems = 50

// decoder decodes one file and collects every problem it finds, each with
// its line. It holds the file's YAML tree and every place in it that holds
// a value (a slot): a problem found by the YAML library is traced back to
// its slot, which is taken out of the tree (an unknown or repeated key) or
// emptied (a value of the wrong type) before decoding again, so that one
// run reports them all. Validation problems name a field path, which the
// slots map back to a line.
type decoder struct {
	source   string
	slots    []*slot          // in document order
	byPath   map[string]*slot // the first slot of each path
	byToken  map[*token.Token]tokenAt
	problems []*FieldError
	nulled   []string // the paths of the slots emptied
	// truncated is set when decoding found more than maxDecodeProblems
	// and stopped.
	truncated bool
}

// slot is a place in the tree that holds a value: a key's value in a
// mapping, or an item of a sequence.
type slot struct {
	path   string       // "agents[2].max_depth"
	parent string       // the path of the mapping or sequence holding it
	typ    reflect.Type // the Go type decoded there; nil where none is
	key    ast.MapKeyNode
	value  ast.Node
	set    func(ast.Node) // replaces the value in the tree
	remove func()         // takes the key out of its mapping; nil for an item
	done   bool           // emptied or removed already
}

// tokenAt is the slot a token belongs to, as its key or in its value.
type tokenAt struct {
	slot  *slot
	isKey bool
}

var (
	configType = reflect.TypeFor[Config]()
	timeType   = reflect.TypeFor[time.Time]()
)

func decodeOptions() []yaml.DecodeOption {
	return []yaml.DecodeOption{yaml.Strict(), yaml.DisallowUnknownField(), yaml.CustomUnmarshaler(parseTime)}
}

// decodeFile decodes data strictly. It returns the configuration, nil when
// the file cannot be decoded at all (a syntax error, a second document, a
// top level that is not a mapping), and the decoder holding the problems.
// A configuration is returned along with problems when they could be set
// aside: what remains of the file is then validated too.
//
// A panic of the YAML library (seen on malformed tags, e.g.
// "delegations: !00 00", found by FuzzParse) is a problem: a bad file must
// be refused, not crash the server.
func decodeFile(data []byte, source string) (c *Config, d *decoder) {
	d = &decoder{source: source, byPath: map[string]*slot{}, byToken: map[*token.Token]tokenAt{}}
	defer func() {
		if r := recover(); r != nil {
			c = nil
			d.add(0, 0, "", fmt.Sprintf("cannot decode this YAML (the decoder failed: %v)", r))
		}
	}()
	// Repeated keys are found below with the other problems, not as a
	// syntax error that would stop everything.
	f, err := parser.ParseBytes(data, 0, parser.AllowDuplicateMapKey())
	if err != nil {
		d.addYAMLError(err)
		return nil, d
	}
	if n, line := docMarkers(data); len(f.Docs) > 1 || n > 1 {
		if line == 0 && len(f.Docs) > 1 {
			if line, _ = tokenPos(f.Docs[1].Start); line == 0 {
				line, _ = nodePos(f.Docs[1].Body)
			}
		}
		d.add(line, 1, "", "holds more than one YAML document")
		return nil, d
	}
	if len(f.Docs) == 0 || f.Docs[0].Body == nil {
		return new(Config), d // empty, or comments only
	}
	root := f.Docs[0].Body
	d.walk(root, "", configType)
	d.checkTimes()
	for !d.truncated {
		c = new(Config)
		err := yaml.NodeToValue(root, c, decodeOptions()...)
		if err == nil {
			return c, d
		}
		if !d.setAside(err, root) {
			break
		}
	}
	return nil, d
}

// docMarkers counts the "---" lines that start a YAML document, and
// returns the line of the second. The parser silently drops what follows
// two adjacent markers, so Parse counts them itself rather than ignore part
// of a file.
func docMarkers(data []byte) (n, second int) {
	lineNo := 0
	for line := range strings.Lines(string(data)) {
		lineNo++
		line = strings.TrimRight(line, " \t\r\n")
		if line == "---" || strings.HasPrefix(line, "--- ") {
			n++
			if n == 2 {
				second = lineNo
			}
		}
	}
	return n, second
}

// walk indexes the slots under n, the value at path of Go type typ (nil
// where none is decoded key by key). It takes out of the tree, reporting
// them, every key repeated in a mapping and every key a struct lacks.
func (d *decoder) walk(n ast.Node, path string, typ reflect.Type) {
	switch n := n.(type) {
	case *ast.AnchorNode:
		d.walk(n.Value, path, typ)
	case *ast.TagNode:
		d.walk(n.Value, path, typ)
	case *ast.MappingValueNode:
		d.pair(nil, n, path, typ)
	case *ast.MappingNode:
		seen := map[string]*ast.MappingValueNode{}
		for _, pair := range slices.Clone(n.Values) {
			if pair.Key == nil || pair.Key.IsMergeKey() {
				d.pair(n, pair, path, typ)
				continue
			}
			name := keyName(pair.Key)
			if first, dup := seen[name]; dup {
				line, col := nodePos(pair.Key)
				firstLine, _ := nodePos(first.Key)
				d.add(line, col, path, fmt.Sprintf("key %q already defined on line %d", name, firstLine))
				n.Values = slices.DeleteFunc(n.Values, func(p *ast.MappingValueNode) bool { return p == pair })
				continue
			}
			seen[name] = pair
			d.pair(n, pair, path, typ)
		}
	case *ast.SequenceNode:
		elem := elemType(typ)
		for i := range n.Values {
			s := &slot{path: fmt.Sprintf("%s[%d]", path, i), parent: path, typ: elem, value: n.Values[i]}
			s.set = func(v ast.Node) { n.Values[i], s.value = v, v }
			d.index(s)
			d.walk(n.Values[i], s.path, elem)
		}
	}
}

// pair indexes a key and its value in the mapping m at path, of Go type
// typ. The keys a merge key ("<<") brings in are the mapping's own.
func (d *decoder) pair(m *ast.MappingNode, pair *ast.MappingValueNode, path string, typ reflect.Type) {
	if pair.Key == nil || pair.Key.IsMergeKey() {
		d.walk(pair.Value, path, typ)
		return
	}
	name := keyName(pair.Key)
	ft := fieldType(typ, name)
	if keys, ok := structKeys(typ); ok && ft == nil && m != nil {
		line, col := nodePos(pair.Key)
		d.add(line, col, path, unknownField(name, keys))
		m.Values = slices.DeleteFunc(m.Values, func(p *ast.MappingValueNode) bool { return p == pair })
		return
	}
	s := &slot{path: joinPath(path, name), parent: path, typ: ft, key: pair.Key, value: pair.Value}
	s.set = func(v ast.Node) { pair.Value, s.value = v, v }
	if m != nil {
		s.remove = func() {
			m.Values = slices.DeleteFunc(m.Values, func(p *ast.MappingValueNode) bool { return p == pair })
		}
	}
	if tk := pair.Key.GetToken(); tk != nil {
		d.byToken[tk] = tokenAt{slot: s, isKey: true}
	}
	d.index(s)
	d.walk(pair.Value, s.path, s.typ)
}

// index records s, and the tokens of its value (through anchors and tags)
// as s's; a slot indexed later, deeper in the tree, takes a shared token.
func (d *decoder) index(s *slot) {
	d.slots = append(d.slots, s)
	if _, ok := d.byPath[s.path]; !ok {
		d.byPath[s.path] = s
	}
	for n := s.value; n != nil; n = inner(n) {
		if tk := n.GetToken(); tk != nil {
			d.byToken[tk] = tokenAt{slot: s}
		}
	}
}

// checkTimes decodes every time in the file on its own, so that a bad one
// is reported with its line: the YAML library's error for a time carries
// none.
func (d *decoder) checkTimes() {
	for _, s := range d.slots {
		if s.typ != timeType {
			continue
		}
		var problem string
		switch v := unwrap(s.value); v.(type) {
		case nil, *ast.NullNode, *ast.AliasNode:
			continue
		case *ast.MappingNode, *ast.MappingValueNode, *ast.SequenceNode:
			problem = fmt.Sprintf("want a time such as 2027-01-01T00:00:00Z, got %s", describeNode(v))
		default:
			var t time.Time
			if err := yaml.NodeToValue(s.value, &t, decodeOptions()...); err != nil {
				problem = yaml.FormatError(err, false, false) // no excerpt of the file
			}
		}
		if problem != "" {
			line, col := nodePos(unwrap(s.value))
			d.add(line, col, s.path, problem)
			d.empty(s)
		}
	}
}

// setAside reports err, a decoding error, and takes what caused it out of
// the tree so that decoding can go on: a key, or a value, which is emptied.
// It returns false when decoding cannot go on, as the cause is not in a
// slot (the top level, or an alias to nothing) or was set aside already.
func (d *decoder) setAside(err error, root ast.Node) bool {
	line, col, problem := 0, 0, err.Error()
	var at tokenAt
	var fe *FieldError
	var ye yaml.Error
	switch {
	case errors.As(err, &fe): // from Duration.UnmarshalYAML
		line, col, problem = fe.Line, fe.Column, fe.Problem
		at.slot = d.valueAt(line, col)
	case errors.As(err, &ye):
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			line, col = tk.Position.Line, tk.Position.Column
			at = d.byToken[tk]
		}
		problem = ye.GetMessage()
	}
	s := at.slot
	if s == nil || s.done {
		if ye != nil && ye.GetToken() != nil && unwrap(root).GetToken() == ye.GetToken() {
			problem = typeProblem(err, problem, root)
		}
		d.add(line, col, "", problem)
		return false
	}
	var unknown *yaml.UnknownFieldError
	var dup *yaml.DuplicateKeyError
	if at.isKey && s.remove != nil && (errors.As(err, &unknown) || errors.As(err, &dup)) {
		// What walk could not see: keys merged in with "<<" from an alias.
		if unknown != nil {
			keys, _ := structKeys(d.typeOf(s.parent))
			problem = unknownField(keyName(s.key), keys)
		} else {
			problem = fmt.Sprintf("key %q is also merged in with \"<<\"", keyName(s.key))
		}
		d.add(line, col, s.parent, problem)
		s.remove()
		if d.byPath[s.path] == s {
			delete(d.byPath, s.path)
		}
		s.done = true
		return true
	}
	d.add(line, col, s.path, typeProblem(err, problem, unwrap(s.value)))
	d.empty(s)
	return true
}

// empty replaces the value of s with null (through an anchor, so that an
// alias to it still resolves), which decodes as the zero value.
func (d *decoder) empty(s *slot) {
	null := ast.Null(s.value.GetToken())
	if a, ok := s.value.(*ast.AnchorNode); ok {
		a.Value = null
	} else {
		s.set(null)
	}
	s.done = true
	d.nulled = append(d.nulled, s.path)
}

// valueAt returns the innermost slot whose value starts at line and col.
func (d *decoder) valueAt(line, col int) *slot {
	for _, s := range slices.Backward(d.slots) {
		for n := s.value; n != nil; n = inner(n) {
			if l, c := tokenPos(n.GetToken()); l == line && c == col {
				return s
			}
		}
	}
	return nil
}

// typeOf returns the Go type decoded at path, nil when unknown.
func (d *decoder) typeOf(path string) reflect.Type {
	if path == "" {
		return configType
	}
	if s, ok := d.byPath[path]; ok {
		return s.typ
	}
	return nil
}

// add adds a decoding problem, unless there are too many already.
func (d *decoder) add(line, col int, field, problem string) {
	if len(d.problems) >= maxDecodeProblems {
		d.truncated = true
		return
	}
	d.problems = append(d.problems, &FieldError{File: d.source, Field: field, Line: line, Column: col, Problem: problem})
}

// addYAMLError adds an error of the YAML parser, with its position and
// without the source excerpt, which could show a secret.
func (d *decoder) addYAMLError(err error) {
	var ye yaml.Error
	if !errors.As(err, &ye) {
		d.add(0, 0, "", err.Error())
		return
	}
	line, col := tokenPos(ye.GetToken())
	d.add(line, col, "", ye.GetMessage())
}

// addValidation adds the problems Validate found (err), each placed on the
// line of its field or, when the file does not hold the field, of the
// nearest enclosing one. A problem in a value that decoding emptied, or of
// the record holding it (an agent without a credential when its secret was
// a list), is left out: it is about the empty value, not the file.
func (d *decoder) addValidation(err error) {
	if err == nil {
		return
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		var fe *FieldError
		if !errors.As(e, &fe) {
			d.add(0, 0, "", e.Error())
			continue
		}
		if slices.ContainsFunc(d.nulled, func(p string) bool { return under(fe.Field, p) || (fe.Field != "" && fe.Field == parentPath(p)) }) {
			continue
		}
		for p := fe.Field; p != ""; p = parentPath(p) {
			if s, ok := d.byPath[p]; ok {
				fe.Line, fe.Column = s.pos()
				break
			}
		}
		d.problems = append(d.problems, fe)
	}
}

// err returns every problem, sorted by line and column (those of no known
// line first, as they concern the whole file), joined; nil when there are
// none. When decoding stopped at too many, a last problem says so.
func (d *decoder) err() error {
	slices.SortStableFunc(d.problems, func(a, b *FieldError) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
	errs := make([]error, 0, len(d.problems)+1)
	for _, p := range d.problems {
		errs = append(errs, p)
	}
	if d.truncated {
		errs = append(errs, &FieldError{File: d.source, Problem: fmt.Sprintf("more than %d problems; fix these first", maxDecodeProblems)})
	}
	return errors.Join(errs...)
}

// pos is where s is written: its key, or for an item its value.
func (s *slot) pos() (line, col int) {
	if s.key != nil {
		return nodePos(s.key)
	}
	return nodePos(s.value)
}

// nodePos is where n starts: a block mapping starts at its first key (its
// own token is the first colon).
func nodePos(n ast.Node) (line, col int) {
	switch m := n.(type) {
	case nil:
		return 0, 0
	case *ast.MappingNode:
		if !m.IsFlowStyle && len(m.Values) > 0 {
			return nodePos(m.Values[0].Key)
		}
	case *ast.MappingValueNode:
		return nodePos(m.Key)
	}
	return tokenPos(n.GetToken())
}

func tokenPos(tk *token.Token) (line, col int) {
	if tk == nil || tk.Position == nil {
		return 0, 0
	}
	return tk.Position.Line, tk.Position.Column
}

// inner returns the node an anchor or a tag wraps, nil for any other.
func inner(n ast.Node) ast.Node {
	switch n := n.(type) {
	case *ast.AnchorNode:
		return n.Value
	case *ast.TagNode:
		return n.Value
	}
	return nil
}

// unwrap returns n without its anchors and tags.
func unwrap(n ast.Node) ast.Node {
	for i := inner(n); i != nil; i = inner(n) {
		n = i
	}
	return n
}

func keyName(k ast.MapKeyNode) string {
	if s, ok := k.(*ast.StringNode); ok {
		return s.Value
	}
	if tk := k.GetToken(); tk != nil {
		return tk.Value
	}
	return k.String()
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// parentPath is "agents[2]" for "agents[2].max_depth", "agents" for
// "agents[2]" and "" for "agents".
func parentPath(path string) string {
	if i := strings.LastIndexAny(path, ".["); i > 0 {
		return path[:i]
	}
	return ""
}

// under reports whether field is path or inside it.
func under(field, path string) bool {
	rest, ok := strings.CutPrefix(field, path)
	return ok && (rest == "" || rest[0] == '.' || rest[0] == '[')
}

// fieldType returns the Go type of the key name in a value of type t, nil
// when t has no such key or decodes itself.
func fieldType(t reflect.Type, name string) reflect.Type {
	t = deref(t)
	if t != nil && t.Kind() == reflect.Map && !decodesItself(t) {
		return t.Elem()
	}
	keys, _ := structKeys(t)
	for _, k := range keys {
		if k.name == name {
			return k.typ
		}
	}
	return nil
}

func elemType(t reflect.Type) reflect.Type {
	t = deref(t)
	if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) && !decodesItself(t) {
		return t.Elem()
	}
	return nil
}

func deref(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

type structKey struct {
	name string
	typ  reflect.Type
}

// structKeys returns the YAML keys of t, and whether t is a struct decoded
// key by key (not a time, nor a type with its own UnmarshalYAML), as the
// YAML library names them: the yaml tag, else the lower-cased field name;
// an inline struct's keys are its parent's.
func structKeys(t reflect.Type) ([]structKey, bool) {
	t = deref(t)
	if t == nil || t.Kind() != reflect.Struct || decodesItself(t) {
		return nil, false
	}
	var keys []structKey
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if (!f.IsExported() && !f.Anonymous) || name == "-" {
			continue
		}
		if slices.Contains(strings.Split(opts, ","), "inline") {
			inline, _ := structKeys(f.Type)
			keys = append(keys, inline...)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		keys = append(keys, structKey{name: name, typ: f.Type})
	}
	return keys, true
}

// decodesItself reports whether the YAML library decodes a value of type t
// as a whole, not key by key.
func decodesItself(t reflect.Type) bool {
	if t == timeType {
		return true
	}
	p := reflect.PointerTo(t)
	for _, i := range []reflect.Type{
		reflect.TypeFor[yaml.BytesUnmarshaler](), reflect.TypeFor[yaml.BytesUnmarshalerContext](),
		reflect.TypeFor[yaml.InterfaceUnmarshaler](), reflect.TypeFor[yaml.InterfaceUnmarshalerContext](),
		reflect.TypeFor[yaml.NodeUnmarshaler](), reflect.TypeFor[yaml.NodeUnmarshalerContext](),
		reflect.TypeFor[encoding.TextUnmarshaler](),
	} {
		if p.Implements(i) {
			return true
		}
	}
	return false
}

// unknownField is the problem of a key that is none of keys, with the one
// probably meant.
func unknownField(name string, keys []structKey) string {
	problem := fmt.Sprintf("unknown field %q", name)
	if hint := suggest(name, keys); hint != "" {
		problem += fmt.Sprintf("; did you mean %q?", hint)
	}
	return problem
}

// suggest returns the key closest to name, when one is close enough to
// be meant by it (at most two edits away, or starting with it, as
// "witness" for "witness_file"): "" otherwise.
func suggest(name string, keys []structKey) string {
	best, bestDist := "", 3
	for _, k := range keys {
		d := editDistance(name, k.name)
		if len(name) >= 3 && strings.HasPrefix(k.name, name) {
			d = min(d, 2)
		}
		if d < bestDist {
			best, bestDist = k.name, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// typeProblem says what a value of the wrong type (got) should have been,
// in the file's terms rather than Go's.
func typeProblem(err error, problem string, got ast.Node) string {
	var te *yaml.TypeError
	var ue *yaml.UnexpectedNodeTypeError
	var oe *yaml.OverflowError
	switch {
	case errors.As(err, &te):
		return fmt.Sprintf("want %s, got %s", describeType(te.DstType), describeNode(got))
	case errors.As(err, &ue):
		return fmt.Sprintf("want %s, got %s", describeNodeType(ue.Expected), describeNode(got))
	case errors.As(err, &oe):
		return fmt.Sprintf("%s is out of range for %s", oe.SrcNum, describeType(oe.DstType))
	}
	return problem
}

func describeType(t reflect.Type) string {
	switch {
	case t == nil:
		return "another value"
	case t == timeType:
		return "a time"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a sequence"
	case reflect.Struct, reflect.Map:
		return "a mapping"
	case reflect.Pointer:
		return describeType(t.Elem())
	}
	return t.String()
}

func describeNodeType(t ast.NodeType) string {
	switch t {
	case ast.MappingType, ast.MappingValueType:
		return "a mapping"
	case ast.SequenceType:
		return "a sequence"
	case ast.StringType:
		return "a string"
	}
	return strings.ToLower(t.String())
}

// describeNode names the kind of value n is, never its content (which
// could be a secret).
func describeNode(n ast.Node) string {
	switch n.(type) {
	case nil, *ast.NullNode:
		return "null"
	case *ast.StringNode, *ast.LiteralNode:
		return "a string"
	case *ast.IntegerNode:
		return "a whole number"
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "a number"
	case *ast.BoolNode:
		return "true or false"
	case *ast.AliasNode:
		return "an alias"
	}
	return describeNodeType(n.Type())
}
