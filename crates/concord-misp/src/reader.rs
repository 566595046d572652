//! Streaming reader of MISP event JSON in every shape MISP writes it: one event as a bare
//! dict, `{"Event": …}`, a list of either, and the REST search answer `{"response": […]}`.
//!
//! An event with 100,000 attributes must not be held in memory whole, and MISP writes the
//! event's tags (which carry its TLP) *after* its attributes. So events are read in two
//! passes over the same input: [`read_metas`] keeps everything but `Attribute` and `Object`
//! (skipped without building them); [`read_items`] then hands the attributes and objects one
//! at a time, with the index of the event they belong to.

use std::fmt;
use std::io::Read;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::model::{Attribute, EventMeta, MispObject};

/// One attribute or one MISP object of an event.
#[derive(Debug)]
pub enum Item {
    /// An attribute of the event itself.
    Attribute(Attribute),
    /// A MISP object with its attributes.
    Object(MispObject),
}

/// Why MISP JSON could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Malformed JSON or a value of the wrong shape (line and column from serde_json).
    #[error("not MISP event JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The item callback refused an item (the message says why).
    #[error("{0}")]
    Callback(String),
}

/// Reads the metadata of every event (pass 1).
///
/// Errors: [`ReadError::Json`] with line and column for malformed JSON.
pub fn read_metas(input: impl Read) -> Result<Vec<EventMeta>, ReadError> {
    let mut state = State {
        mode: Mode::Meta(Vec::new()),
        next_index: 0,
        failure: None,
    };
    run(input, &mut state)?;
    match state.mode {
        Mode::Meta(m) => Ok(m),
        Mode::Items(..) => unreachable!("mode does not change"),
    }
}

/// Hands every attribute and object to `on_item(event_index, item)` and calls
/// `on_end(event_index)` after the last item of each event (pass 2). Event indexes are those of
/// [`read_metas`] on the same input.
///
/// Errors: malformed JSON, or the first error a callback returned.
pub fn read_items(
    input: impl Read,
    on_item: &mut dyn FnMut(usize, Item) -> Result<(), String>,
    on_end: &mut dyn FnMut(usize) -> Result<(), String>,
) -> Result<(), ReadError> {
    let mut state = State {
        mode: Mode::Items(on_item, on_end),
        next_index: 0,
        failure: None,
    };
    run(input, &mut state)
}

fn run(input: impl Read, state: &mut State<'_>) -> Result<(), ReadError> {
    let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::new(input));
    let result = Wrapper(state).deserialize(&mut de).and_then(|()| de.end());
    match (result, state.failure.take()) {
        (_, Some(message)) => Err(ReadError::Callback(message)),
        (Err(e), None) => Err(ReadError::Json(e)),
        (Ok(()), None) => Ok(()),
    }
}

type ItemFn<'a> = &'a mut dyn FnMut(usize, Item) -> Result<(), String>;
type EndFn<'a> = &'a mut dyn FnMut(usize) -> Result<(), String>;

enum Mode<'a> {
    Meta(Vec<EventMeta>),
    Items(ItemFn<'a>, EndFn<'a>),
}

struct State<'a> {
    mode: Mode<'a>,
    next_index: usize,
    failure: Option<String>,
}

/// Keys of an event that pass 1 skips (large, streamed in pass 2, or not converted).
const SKIPPED_IN_META: &[&str] = &[
    "Attribute",
    "Object",
    "ShadowAttribute",
    "RelatedEvent",
    "EventReport",
];

/// Top level or list element: a list, `{"response": …}`, `{"Event": …}` or a bare event.
struct Wrapper<'s, 'a>(&'s mut State<'a>);

impl<'de> DeserializeSeed<'de> for Wrapper<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Wrapper<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a MISP event, {\"Event\": …}, a list of events or {\"response\": […]}")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Wrapper(self.0))?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some(first) = map.next_key::<String>()? else {
            return Err(de::Error::custom(
                "an empty JSON object is not a MISP event (no uuid)",
            ));
        };
        match first.as_str() {
            "Event" | "response" => {
                if first == "Event" {
                    map.next_value_seed(EventSeed(self.0))?;
                } else {
                    map.next_value_seed(Wrapper(self.0))?;
                }
                while let Some((_, IgnoredAny)) = map.next_entry::<String, IgnoredAny>()? {}
                Ok(())
            }
            _ => event_map(self.0, Some(first), map),
        }
    }
}

struct EventSeed<'s, 'a>(&'s mut State<'a>);

impl<'de> DeserializeSeed<'de> for EventSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EventSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a MISP event object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        event_map(self.0, None, map)
    }
}

/// The body of one event; `first` is a key already read by the caller.
fn event_map<'de, A: MapAccess<'de>>(
    state: &mut State<'_>,
    first: Option<String>,
    mut map: A,
) -> Result<(), A::Error> {
    let index = state.next_index;
    state.next_index += 1;
    let mut kept = Map::new();
    let mut key = first;
    if key.is_none() {
        key = map.next_key::<String>()?;
    }
    while let Some(k) = key {
        match &mut state.mode {
            Mode::Meta(_) => {
                if SKIPPED_IN_META.contains(&k.as_str()) {
                    map.next_value::<IgnoredAny>()?;
                } else {
                    let v: Value = map.next_value()?;
                    kept.insert(k, v);
                }
            }
            Mode::Items(..) => match k.as_str() {
                "Attribute" => map.next_value_seed(Items {
                    state: &mut *state,
                    index,
                    objects: false,
                })?,
                "Object" => map.next_value_seed(Items {
                    state: &mut *state,
                    index,
                    objects: true,
                })?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            },
        }
        key = map.next_key::<String>()?;
    }
    match &mut state.mode {
        Mode::Meta(metas) => {
            let meta: EventMeta = serde_json::from_value(Value::Object(kept))
                .map_err(|e| de::Error::custom(format!("event #{index}: {e}")))?;
            metas.push(meta);
        }
        Mode::Items(_, on_end) => {
            if let Err(message) = on_end(index) {
                state.failure = Some(message.clone());
                return Err(de::Error::custom(message));
            }
        }
    }
    Ok(())
}

/// The `Attribute` or `Object` list of one event, element by element.
struct Items<'s, 'a> {
    state: &'s mut State<'a>,
    index: usize,
    objects: bool,
}

impl<'de> DeserializeSeed<'de> for Items<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Items<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of MISP attributes or objects")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            let item = if self.objects {
                seq.next_element::<MispObject>()?.map(Item::Object)
            } else {
                seq.next_element::<Attribute>()?.map(Item::Attribute)
            };
            let Some(item) = item else { return Ok(()) };
            if let Mode::Items(on_item, _) = &mut self.state.mode
                && let Err(message) = on_item(self.index, item)
            {
                self.state.failure = Some(message.clone());
                return Err(de::Error::custom(message));
            }
        }
    }
}
