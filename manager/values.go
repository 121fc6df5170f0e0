package manager

// Values: what proxies send and get back, CBOR made and read by the
// library, with hand-made fast paths for the common scalars.

import "fmt"

// encode makes a value's CBOR; the common scalar types are encoded by
// hand (the same bytes, checked by TestValueFastPaths), the rest by the
// library.
func encode(v any) ([]byte, error) {
	switch x := v.(type) {
	case string:
		return appendText(make([]byte, 0, len(x)+9), x), nil
	case []byte:
		if x != nil {
			return append(appendHead(make([]byte, 0, len(x)+9), mBytes, uint64(len(x))), x...), nil
		}
	case int:
		return appendInt(make([]byte, 0, 9), int64(x)), nil
	case int64:
		return appendInt(make([]byte, 0, 9), x), nil
	case bool:
		if x {
			return []byte{cTrue}, nil
		}
		return []byte{cFalse}, nil
	}
	b, err := encMode.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return b, nil
}

func decode(b []byte, out any) error {
	if out == nil {
		return nil
	}
	if b == nil {
		return fmt.Errorf("%w: no value", ErrNotFound)
	}
	if decodeFast(b, out) {
		return nil
	}
	if err := decMode.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%w: %v", ErrType, err)
	}
	return nil
}

// decodeFast decodes b into the common scalar types when b is exactly
// one value of the matching CBOR type; anything else is left to the
// library (false), so results and errors are the library's.
func decodeFast(b []byte, out any) bool {
	d := wireDec{b: b}
	switch p := out.(type) {
	case *string:
		if len(b) == 0 || b[0]&0xe0 != mText {
			return false
		}
		v := d.text()
		if d.end() != nil {
			return false
		}
		*p = v
	case *[]byte:
		if len(b) == 0 || b[0]&0xe0 != mBytes {
			return false
		}
		v := d.bytes()
		if d.end() != nil {
			return false
		}
		*p = v
	case *int64, *int:
		if len(b) == 0 || (b[0]&0xe0 != mUint && b[0]&0xe0 != mNeg) {
			return false
		}
		v := d.int()
		if d.end() != nil {
			return false
		}
		if ip, ok := p.(*int); ok {
			if int64(int(v)) != v {
				return false
			}
			*ip = int(v)
		} else {
			*p.(*int64) = v
		}
	default:
		return false
	}
	return true
}
