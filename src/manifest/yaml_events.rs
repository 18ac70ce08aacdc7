//! The YAML event stream of a manifest, from the very parser serde_yaml runs on.
//!
//! serde_yaml parses with `unsafe-libyaml` (libyaml translated to Rust) but does not expose its
//! events, so the pre-scan in [`super::limits`] reads them here through the same crate. Same
//! parser, same input: the scan sees exactly the documents, nodes and anchors serde_yaml will
//! build afterwards, and no input can fail one way in the scan and another in the parse.
//! (`libyaml-safer`, a safe re-port, was used before: fuzzing found that `[!t,` — a tag before a
//! comma in a flow collection, valid YAML — makes it panic, an open upstream bug next to others.)
//!
//! The `unsafe` is confined to this file: one parser on the heap (libyaml keeps pointers into
//! it), fed one borrowed input that outlives it, each event copied out (only what the scan
//! needs: kind, anchor, position) and freed before the next, the parser freed on drop.

use std::ffi::CStr;
use std::fmt;
use std::marker::PhantomData;
use std::mem::MaybeUninit;

use unsafe_libyaml as yaml_unsafe;

/// One parser event, as much of it as the limits need.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Event {
    DocumentStart,
    Scalar {
        anchor: Option<Vec<u8>>,
    },
    Alias {
        anchor: Vec<u8>,
    },
    SequenceStart {
        anchor: Option<Vec<u8>>,
    },
    MappingStart {
        anchor: Option<Vec<u8>>,
    },
    CollectionEnd,
    /// Stream start, document end: nothing to count.
    Other,
}

/// A position in the input (zero-based inside, printed one-based like libyaml's messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Mark {
    pub line: u64,
    pub column: u64,
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {} column {}", self.line + 1, self.column + 1)
    }
}

impl From<yaml_unsafe::yaml_mark_t> for Mark {
    fn from(m: yaml_unsafe::yaml_mark_t) -> Self {
        Mark {
            line: m.line,
            column: m.column,
        }
    }
}

/// A syntax error: libyaml's fixed description of the problem and where; never input text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SyntaxError {
    pub problem: String,
    pub mark: Mark,
}

/// The events of one input, in order, ending after the stream end or the first error.
pub(super) struct Events<'input> {
    /// Initialised by `yaml_parser_initialize` in `new`; boxed because libyaml's parser must
    /// not move once it has buffers.
    parser: Box<MaybeUninit<yaml_unsafe::yaml_parser_t>>,
    done: bool,
    /// The parser reads from this input until it is dropped.
    input: PhantomData<&'input [u8]>,
}

impl<'input> Events<'input> {
    pub(super) fn new(input: &'input [u8]) -> Events<'input> {
        let mut parser = Box::new(MaybeUninit::<yaml_unsafe::yaml_parser_t>::uninit());
        let p = parser.as_mut_ptr();
        // SAFETY: `p` points to memory for one parser, which `yaml_parser_initialize` fills in
        // completely (it zeroes it first); the input pointer and length describe `input`, which
        // outlives the parser ('input); the encoding is set once, before the first read.
        let ok = unsafe {
            let ok = yaml_unsafe::yaml_parser_initialize(p).ok;
            if ok {
                yaml_unsafe::yaml_parser_set_encoding(p, yaml_unsafe::YAML_UTF8_ENCODING);
                yaml_unsafe::yaml_parser_set_input_string(p, input.as_ptr(), input.len() as _);
            }
            ok
        };
        // It fails only when memory cannot be allocated, which aborts in Rust before that.
        assert!(ok, "libyaml could not allocate its parser");
        Events {
            parser,
            done: false,
            input: PhantomData,
        }
    }

    /// The next event, `None` after the stream end.
    pub(super) fn next_event(&mut self) -> Option<Result<(Event, Mark), SyntaxError>> {
        if self.done {
            return None;
        }
        let p = self.parser.as_mut_ptr();
        let mut raw = MaybeUninit::<yaml_unsafe::yaml_event_t>::uninit();
        // SAFETY: the parser was initialised in `new` and its input is alive; after a failed
        // parse (`done` set) it is not asked again. A parsed event is read only through the
        // union member its `type_` names; its anchor is a NUL-terminated string owned by the
        // event, copied out before `yaml_event_delete` frees the event, exactly once.
        unsafe {
            if !yaml_unsafe::yaml_parser_parse(p, raw.as_mut_ptr()).ok {
                self.done = true;
                return Some(Err(syntax_error(&*p)));
            }
            let ev: &yaml_unsafe::yaml_event_t = &*raw.as_ptr();
            let mark = Mark::from(ev.start_mark);
            let event = match ev.type_ {
                yaml_unsafe::YAML_DOCUMENT_START_EVENT => Event::DocumentStart,
                yaml_unsafe::YAML_SCALAR_EVENT => Event::Scalar {
                    anchor: anchor(ev.data.scalar.anchor),
                },
                yaml_unsafe::YAML_ALIAS_EVENT => Event::Alias {
                    anchor: anchor(ev.data.alias.anchor).unwrap_or_default(),
                },
                yaml_unsafe::YAML_SEQUENCE_START_EVENT => Event::SequenceStart {
                    anchor: anchor(ev.data.sequence_start.anchor),
                },
                yaml_unsafe::YAML_MAPPING_START_EVENT => Event::MappingStart {
                    anchor: anchor(ev.data.mapping_start.anchor),
                },
                yaml_unsafe::YAML_SEQUENCE_END_EVENT | yaml_unsafe::YAML_MAPPING_END_EVENT => {
                    Event::CollectionEnd
                }
                yaml_unsafe::YAML_STREAM_END_EVENT => {
                    self.done = true;
                    Event::Other
                }
                _ => Event::Other,
            };
            yaml_unsafe::yaml_event_delete(raw.as_mut_ptr());
            Some(Ok((event, mark)))
        }
    }
}

impl Drop for Events<'_> {
    fn drop(&mut self) {
        // SAFETY: initialised in `new` (which panics otherwise, before `Events` exists), deleted
        // once, here.
        unsafe { yaml_unsafe::yaml_parser_delete(self.parser.as_mut_ptr()) }
    }
}

/// Copies an anchor name out of an event (`None` for a null pointer).
///
/// # Safety
/// `ptr` is null or a NUL-terminated string alive for this call.
unsafe fn anchor(ptr: *const u8) -> Option<Vec<u8>> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: the caller's contract.
    Some(unsafe { CStr::from_ptr(ptr.cast()) }.to_bytes().to_vec())
}

/// The parser's error after a failed parse: `problem` is null or one of libyaml's static
/// NUL-terminated strings.
fn syntax_error(parser: &yaml_unsafe::yaml_parser_t) -> SyntaxError {
    let problem = if parser.problem.is_null() {
        "the YAML parser failed".to_owned()
    } else {
        // SAFETY: non-null, so one of libyaml's static NUL-terminated messages.
        unsafe { CStr::from_ptr(parser.problem) }
            .to_string_lossy()
            .into_owned()
    };
    SyntaxError {
        problem,
        mark: Mark::from(parser.problem_mark),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn events(text: &str) -> Result<Vec<Event>, SyntaxError> {
        let mut ev = Events::new(text.as_bytes());
        let mut out = Vec::new();
        while let Some(e) = ev.next_event() {
            out.push(e?.0);
        }
        Ok(out)
    }

    #[test]
    fn reads_documents_collections_anchors_and_aliases() {
        let got = events("a: &x [1]\nb: *x\n---\n- c\n").unwrap();
        use Event::*;
        assert_eq!(
            got,
            vec![
                Other,
                DocumentStart,
                MappingStart { anchor: None },
                Scalar { anchor: None },
                SequenceStart {
                    anchor: Some(b"x".to_vec())
                },
                Scalar { anchor: None },
                CollectionEnd,
                Scalar { anchor: None },
                Alias {
                    anchor: b"x".to_vec()
                },
                CollectionEnd,
                Other,
                DocumentStart,
                SequenceStart { anchor: None },
                Scalar { anchor: None },
                CollectionEnd,
                Other,
                Other,
            ]
        );
    }

    #[test]
    fn a_syntax_error_ends_the_stream_with_where() {
        let mut ev = Events::new(b"a: [1, 2\nb: c\n");
        let err = loop {
            match ev.next_event() {
                Some(Ok(_)) => continue,
                Some(Err(e)) => break e,
                None => panic!("no error"),
            }
        };
        assert!(!err.problem.is_empty());
        assert_eq!(err.mark.line, 1, "{err:?}");
        assert!(ev.next_event().is_none());
    }

    /// Inputs that made libyaml-safer panic (fuzzing; its upstream issues 6 and 7) parse or
    /// fail cleanly, exactly as serde_yaml sees them.
    #[test]
    fn inputs_that_panicked_the_previous_parser() {
        for text in ["[!t,", "[!,", "a: ''|\n 0", "{!t,: 1}"] {
            let scanned = events(text);
            let parsed = serde_yaml::Deserializer::from_str(text)
                .map(serde_yaml::Value::deserialize)
                .collect::<Result<Vec<_>, _>>();
            assert_eq!(scanned.is_ok(), parsed.is_ok(), "{text:?}: {scanned:?}");
        }
    }
}
