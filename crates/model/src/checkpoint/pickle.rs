//! A small, safe interpreter for the pickle protocol (0–5) as `torch.save` uses it.
//!
//! It never imports or calls anything: a `GLOBAL` becomes a [`Node::Global`] name, a call
//! (`REDUCE`, `NEWOBJ`, `OBJ`, `INST`) becomes a [`Node::Call`] record of callable and
//! arguments, and a persistent id (`BINPERSID`) becomes a [`Node::Persistent`] — the torch
//! layer above decides what those mean. `collections.OrderedDict()` is the one call evaluated
//! here (it is a dict).
//!
//! Objects live in an arena and are referred to by [`Id`], which gives pickle's identity
//! semantics for the memo (a dict memoised when empty and filled later is the same dict), makes
//! reference cycles harmless, and keeps dropping a deeply nested hostile structure flat.
//! Every read is bounds-checked; the arena, stack and memo grow by at most one entry per opcode,
//! so memory stays proportional to the input.

use std::collections::HashMap;

/// Index of a node in the [`Pickle`] arena.
pub type Id = usize;

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    None,
    Bool(bool),
    Int(i64),
    /// An integer that does not fit in i64 (little-endian two's complement bytes).
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    /// Key/value pairs in insertion order; a repeated key is kept twice, the last one wins
    /// (see [`Pickle::dict_get`]).
    Dict(Vec<(Id, Id)>),
    Set(Vec<Id>),
    Global {
        module: String,
        name: String,
    },
    /// `callable(*args)`, not evaluated, plus what later opcodes added to the result.
    Call {
        callable: Id,
        args: Id,
        /// `BUILD` argument (`__setstate__` / `__dict__` update), if any.
        state: Option<Id>,
        /// Items added by `SETITEM(S)` (dict subclasses).
        dict_items: Vec<(Id, Id)>,
        /// Items added by `APPEND(S)` (list subclasses).
        list_items: Vec<Id>,
    },
    /// `persistent_load(pid)`: for torch, a `('storage', type, key, location, numel)` tuple.
    Persistent(Id),
}

/// A parsed pickle: the arena and the id of the object `STOP` returned.
#[derive(Debug)]
pub struct Pickle {
    nodes: Vec<Node>,
    pub root: Id,
}

#[derive(Debug, thiserror::Error)]
pub enum PickleError {
    #[error("pickle data ends early at byte {0} (the file is truncated or not a pickle)")]
    Truncated(usize),
    #[error("unsupported pickle opcode 0x{op:02x} at byte {pos}")]
    Unsupported { op: u8, pos: usize },
    #[error("malformed pickle at byte {pos}: {what}")]
    Malformed { pos: usize, what: String },
}

type Result<T> = std::result::Result<T, PickleError>;

impl Pickle {
    /// Parses one pickle from the start of `data`; returns it and the number of bytes used.
    pub fn parse(data: &[u8]) -> Result<(Pickle, usize)> {
        let mut vm = Machine {
            data,
            pos: 0,
            nodes: Vec::new(),
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            copied: 0,
        };
        let root = vm.run()?;
        let used = vm.pos;
        Ok((
            Pickle {
                nodes: vm.nodes,
                root,
            },
            used,
        ))
    }

    /// Number of nodes; every id below it is valid.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn node(&self, id: Id) -> &Node {
        // Ids only come from this arena (the machine checks every memo/stack access).
        &self.nodes[id]
    }

    pub fn as_str(&self, id: Id) -> Option<&str> {
        match self.node(id) {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self, id: Id) -> Option<i64> {
        match self.node(id) {
            Node::Int(i) => Some(*i),
            Node::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    /// The elements of a tuple or list.
    pub fn as_seq(&self, id: Id) -> Option<&[Id]> {
        match self.node(id) {
            Node::Tuple(items) | Node::List(items) => Some(items),
            _ => None,
        }
    }

    /// `module.name` of a global, e.g. `torch._utils._rebuild_tensor_v2`.
    pub fn global_name(&self, id: Id) -> Option<String> {
        match self.node(id) {
            Node::Global { module, name } => Some(format!("{module}.{name}")),
            _ => None,
        }
    }

    /// The key/value pairs of a dict, or of a dict subclass built by a call.
    pub fn dict_items(&self, id: Id) -> Option<&[(Id, Id)]> {
        match self.node(id) {
            Node::Dict(items) => Some(items),
            Node::Call { dict_items, .. } if !dict_items.is_empty() => Some(dict_items),
            _ => None,
        }
    }

    /// Looks a string key up in a dict (the last occurrence wins, as in Python).
    pub fn dict_get(&self, dict: Id, key: &str) -> Option<Id> {
        self.dict_items(dict)?
            .iter()
            .rev()
            .find(|(k, _)| self.as_str(*k) == Some(key))
            .map(|&(_, v)| v)
    }

    /// A short description of a node for error messages.
    pub fn describe(&self, id: Id) -> String {
        match self.node(id) {
            Node::None => "None".into(),
            Node::Bool(b) => format!("bool {b}"),
            Node::Int(i) => format!("int {i}"),
            Node::BigInt(_) => "a large int".into(),
            Node::Float(f) => format!("float {f}"),
            Node::Str(s) if s.len() <= 40 => format!("str {s:?}"),
            Node::Str(s) => format!("str of {} bytes", s.len()),
            Node::Bytes(b) => format!("bytes of length {}", b.len()),
            Node::Tuple(t) => format!("tuple of {}", t.len()),
            Node::List(l) => format!("list of {}", l.len()),
            Node::Dict(d) => format!("dict of {}", d.len()),
            Node::Set(s) => format!("set of {}", s.len()),
            Node::Global { module, name } => format!("{module}.{name}"),
            Node::Call { callable, .. } => match self.global_name(*callable) {
                Some(name) => format!("a {name}(...) object"),
                None => "an object".into(),
            },
            Node::Persistent(_) => "a persistent id".into(),
        }
    }
}

/// Opcodes, named as in Python's `pickle` module.
mod op {
    pub const MARK: u8 = b'(';
    pub const STOP: u8 = b'.';
    pub const POP: u8 = b'0';
    pub const POP_MARK: u8 = b'1';
    pub const DUP: u8 = b'2';
    pub const FLOAT: u8 = b'F';
    pub const INT: u8 = b'I';
    pub const BININT: u8 = b'J';
    pub const BININT1: u8 = b'K';
    pub const LONG: u8 = b'L';
    pub const BININT2: u8 = b'M';
    pub const NONE: u8 = b'N';
    pub const PERSID: u8 = b'P';
    pub const BINPERSID: u8 = b'Q';
    pub const REDUCE: u8 = b'R';
    pub const STRING: u8 = b'S';
    pub const BINSTRING: u8 = b'T';
    pub const SHORT_BINSTRING: u8 = b'U';
    pub const UNICODE: u8 = b'V';
    pub const BINUNICODE: u8 = b'X';
    pub const APPEND: u8 = b'a';
    pub const BUILD: u8 = b'b';
    pub const GLOBAL: u8 = b'c';
    pub const DICT: u8 = b'd';
    pub const EMPTY_DICT: u8 = b'}';
    pub const APPENDS: u8 = b'e';
    pub const GET: u8 = b'g';
    pub const BINGET: u8 = b'h';
    pub const INST: u8 = b'i';
    pub const LONG_BINGET: u8 = b'j';
    pub const LIST: u8 = b'l';
    pub const EMPTY_LIST: u8 = b']';
    pub const OBJ: u8 = b'o';
    pub const PUT: u8 = b'p';
    pub const BINPUT: u8 = b'q';
    pub const LONG_BINPUT: u8 = b'r';
    pub const SETITEM: u8 = b's';
    pub const TUPLE: u8 = b't';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const SETITEMS: u8 = b'u';
    pub const BINFLOAT: u8 = b'G';
    pub const PROTO: u8 = 0x80;
    pub const NEWOBJ: u8 = 0x81;
    pub const TUPLE1: u8 = 0x85;
    pub const TUPLE2: u8 = 0x86;
    pub const TUPLE3: u8 = 0x87;
    pub const NEWTRUE: u8 = 0x88;
    pub const NEWFALSE: u8 = 0x89;
    pub const LONG1: u8 = 0x8a;
    pub const LONG4: u8 = 0x8b;
    pub const BINBYTES: u8 = b'B';
    pub const SHORT_BINBYTES: u8 = b'C';
    pub const SHORT_BINUNICODE: u8 = 0x8c;
    pub const BINUNICODE8: u8 = 0x8d;
    pub const BINBYTES8: u8 = 0x8e;
    pub const EMPTY_SET: u8 = 0x8f;
    pub const ADDITEMS: u8 = 0x90;
    pub const FROZENSET: u8 = 0x91;
    pub const NEWOBJ_EX: u8 = 0x92;
    pub const STACK_GLOBAL: u8 = 0x93;
    pub const MEMOIZE: u8 = 0x94;
    pub const FRAME: u8 = 0x95;
    pub const BYTEARRAY8: u8 = 0x96;
    pub const READONLY_BUFFER: u8 = 0x98;
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    nodes: Vec<Node>,
    stack: Vec<Id>,
    /// Stack lengths at each MARK (Python's metastack).
    marks: Vec<usize>,
    memo: HashMap<u64, Id>,
    /// Bytes copied out of existing nodes so far (names of globals, a set's items): a memo lets
    /// a small pickle refer to a large value over and over, so copies are charged against
    /// [`Machine::copy_budget`].
    copied: usize,
}

impl Machine<'_> {
    /// What copies may add up to: 16× the pickle and 64 MiB.
    fn copy_budget(&self) -> usize {
        self.data.len().saturating_mul(16).saturating_add(64 << 20)
    }

    fn charge_copy(&mut self, bytes: usize) -> Result<()> {
        self.copied = self.copied.saturating_add(bytes);
        if self.copied > self.copy_budget() {
            return self.malformed(format!(
                "the pickle copies its values over and over (more than {} bytes from {})",
                self.copy_budget(),
                self.data.len()
            ));
        }
        Ok(())
    }

    fn malformed<T>(&self, what: impl Into<String>) -> Result<T> {
        Err(PickleError::Malformed {
            pos: self.pos,
            what: what.into(),
        })
    }

    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.data.len())
            .ok_or(PickleError::Truncated(self.data.len()))?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take_array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take_array()?))
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take_array()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take_array()?))
    }

    /// A length prefix, checked against what is left so a huge claim fails before allocating.
    fn len_from(&mut self, n: u64) -> Result<usize> {
        let left = self.data.len() - self.pos;
        match usize::try_from(n) {
            Ok(n) if n <= left => Ok(n),
            _ => Err(PickleError::Truncated(self.data.len())),
        }
    }

    /// A newline-terminated argument of the text opcodes (without the newline).
    fn line(&mut self) -> Result<&[u8]> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(PickleError::Truncated(self.data.len()))?;
        let line = &self.data[self.pos..self.pos + n];
        self.pos += n + 1;
        Ok(line)
    }

    fn line_str(&mut self) -> Result<String> {
        let line = self.line()?.to_vec();
        String::from_utf8(line).or_else(|_| self.malformed("text argument is not UTF-8"))
    }

    fn take_str(&mut self, n: usize) -> Result<String> {
        let start = self.pos;
        let bytes = self.take(n)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(PickleError::Malformed {
                pos: start,
                what: "string is not valid UTF-8".into(),
            }),
        }
    }

    fn alloc(&mut self, node: Node) -> Id {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn push(&mut self, node: Node) {
        let id = self.alloc(node);
        self.stack.push(id);
    }

    fn pop(&mut self) -> Result<Id> {
        // Items above the innermost mark belong to it; popping below it would corrupt it.
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return self.malformed("stack underflow");
        }
        Ok(self.stack.pop().expect("checked above"))
    }

    fn top(&self) -> Result<Id> {
        let floor = self.marks.last().copied().unwrap_or(0);
        match self.stack.last() {
            Some(&id) if self.stack.len() > floor => Ok(id),
            _ => self.malformed("stack underflow"),
        }
    }

    fn pop_mark(&mut self) -> Result<Vec<Id>> {
        let Some(mark) = self.marks.pop() else {
            return self.malformed("no MARK on the stack");
        };
        Ok(self.stack.split_off(mark))
    }

    fn memo_get(&self, key: u64) -> Result<Id> {
        match self.memo.get(&key) {
            Some(&id) => Ok(id),
            None => self.malformed(format!("memo entry {key} is not set")),
        }
    }

    fn memo_put(&mut self, key: u64) -> Result<()> {
        let top = self.top()?;
        self.memo.insert(key, top);
        Ok(())
    }

    fn pairs(&self, items: Vec<Id>) -> Result<Vec<(Id, Id)>> {
        let chunks = items.chunks_exact(2);
        if !chunks.remainder().is_empty() {
            return self.malformed("odd number of items for a dict");
        }
        Ok(chunks.map(|kv| (kv[0], kv[1])).collect())
    }

    fn add_dict_items(&mut self, target: Id, items: Vec<(Id, Id)>) -> Result<()> {
        match &mut self.nodes[target] {
            Node::Dict(entries) => entries.extend(items),
            Node::Call { dict_items, .. } => dict_items.extend(items),
            _ => return self.malformed("SETITEM on something that is not a dict"),
        }
        Ok(())
    }

    fn add_list_items(&mut self, target: Id, items: Vec<Id>) -> Result<()> {
        match &mut self.nodes[target] {
            Node::List(entries) => entries.extend(items),
            Node::Call { list_items, .. } => list_items.extend(items),
            _ => return self.malformed("APPEND on something that is not a list"),
        }
        Ok(())
    }

    fn add_set_items(&mut self, target: Id, items: Vec<Id>) -> Result<()> {
        match &mut self.nodes[target] {
            Node::Set(entries) => entries.extend(items),
            _ => return self.malformed("ADDITEMS on something that is not a set"),
        }
        Ok(())
    }

    /// `callable(*args)`: kept as a record, except for the containers Python would build.
    fn call(&mut self, callable: Id, args: Id) -> Result<()> {
        // The arguments are looked at, not copied: a memoised tuple may be called with often.
        let (count, first) = match &self.nodes[args] {
            Node::Tuple(items) => (items.len(), items.first().copied()),
            _ => return self.malformed("call arguments are not a tuple"),
        };
        let node = match &self.nodes[callable] {
            Node::Global { module, name } => match (module.as_str(), name.as_str()) {
                ("collections", "OrderedDict") | ("builtins" | "__builtin__", "dict")
                    if count == 0 =>
                {
                    Node::Dict(Vec::new())
                }
                ("builtins" | "__builtin__", "set" | "frozenset") if count == 1 => {
                    let items = match first.map(|id| &self.nodes[id]) {
                        Some(Node::List(items) | Node::Tuple(items)) => items.clone(),
                        _ => Vec::new(),
                    };
                    self.charge_copy(items.len() * std::mem::size_of::<Id>())?;
                    Node::Set(items)
                }
                _ => Node::call(callable, args),
            },
            _ => Node::call(callable, args),
        };
        self.push(node);
        Ok(())
    }

    fn decode_long(bytes: &[u8]) -> Node {
        if bytes.is_empty() {
            return Node::Int(0);
        }
        if bytes.len() <= 8 {
            let fill = if bytes[bytes.len() - 1] & 0x80 != 0 {
                0xff
            } else {
                0
            };
            let mut buf = [fill; 8];
            buf[..bytes.len()].copy_from_slice(bytes);
            Node::Int(i64::from_le_bytes(buf))
        } else {
            Node::BigInt(bytes.to_vec())
        }
    }

    fn run(&mut self) -> Result<Id> {
        loop {
            let at = self.pos;
            let code = self.u8()?;
            match code {
                op::PROTO => {
                    let version = self.u8()?;
                    if version > 5 {
                        return self.malformed(format!("pickle protocol {version} is unknown"));
                    }
                }
                op::FRAME => {
                    self.u64()?; // a length hint only
                }
                op::STOP => return self.pop(),
                op::MARK => self.marks.push(self.stack.len()),
                op::POP => {
                    self.pop()?;
                }
                op::POP_MARK => {
                    self.pop_mark()?;
                }
                op::DUP => {
                    let top = self.top()?;
                    self.stack.push(top);
                }

                op::NONE => self.push(Node::None),
                op::NEWTRUE => self.push(Node::Bool(true)),
                op::NEWFALSE => self.push(Node::Bool(false)),
                op::BININT => {
                    let v = i32::from_le_bytes(self.take_array()?);
                    self.push(Node::Int(v.into()));
                }
                op::BININT1 => {
                    let v = self.u8()?;
                    self.push(Node::Int(v.into()));
                }
                op::BININT2 => {
                    let v = self.u16()?;
                    self.push(Node::Int(v.into()));
                }
                op::LONG1 => {
                    let n = self.u8()?.into();
                    let n = self.len_from(n)?;
                    let node = Self::decode_long(self.take(n)?);
                    self.push(node);
                }
                op::LONG4 => {
                    let n = self.u32()?.into();
                    let n = self.len_from(n)?;
                    let node = Self::decode_long(self.take(n)?);
                    self.push(node);
                }
                op::INT | op::LONG => {
                    let text = self.line_str()?;
                    let text = text.trim_end_matches('L');
                    let node = match text {
                        "00" => Node::Bool(false),
                        "01" => Node::Bool(true),
                        _ => match text.parse::<i64>() {
                            Ok(v) => Node::Int(v),
                            Err(_) => return self.malformed(format!("bad integer {text:?}")),
                        },
                    };
                    self.push(node);
                }
                op::BINFLOAT => {
                    let v = f64::from_be_bytes(self.take_array()?);
                    self.push(Node::Float(v));
                }
                op::FLOAT => {
                    let text = self.line_str()?;
                    match text.trim().parse::<f64>() {
                        Ok(v) => self.push(Node::Float(v)),
                        Err(_) => return self.malformed(format!("bad float {text:?}")),
                    }
                }

                op::SHORT_BINUNICODE => {
                    let n = self.u8()?.into();
                    let n = self.len_from(n)?;
                    let s = self.take_str(n)?;
                    self.push(Node::Str(s));
                }
                op::BINUNICODE => {
                    let n = self.u32()?.into();
                    let n = self.len_from(n)?;
                    let s = self.take_str(n)?;
                    self.push(Node::Str(s));
                }
                op::BINUNICODE8 => {
                    let n = self.u64()?;
                    let n = self.len_from(n)?;
                    let s = self.take_str(n)?;
                    self.push(Node::Str(s));
                }
                op::UNICODE => {
                    // raw-unicode-escape; torch never writes it, plain text is enough here.
                    let s = self.line_str()?;
                    self.push(Node::Str(s));
                }
                op::SHORT_BINSTRING | op::SHORT_BINBYTES => {
                    let n = self.u8()?.into();
                    let n = self.len_from(n)?;
                    let b = self.take(n)?.to_vec();
                    self.push(Node::Bytes(b));
                }
                op::BINSTRING => {
                    let n = i32::from_le_bytes(self.take_array()?);
                    let Ok(n) = u64::try_from(n) else {
                        return self.malformed("negative string length");
                    };
                    let n = self.len_from(n)?;
                    let b = self.take(n)?.to_vec();
                    self.push(Node::Bytes(b));
                }
                op::BINBYTES => {
                    let n = self.u32()?.into();
                    let n = self.len_from(n)?;
                    let b = self.take(n)?.to_vec();
                    self.push(Node::Bytes(b));
                }
                op::BINBYTES8 | op::BYTEARRAY8 => {
                    let n = self.u64()?;
                    let n = self.len_from(n)?;
                    let b = self.take(n)?.to_vec();
                    self.push(Node::Bytes(b));
                }
                op::STRING => {
                    let line = self.line()?.to_vec();
                    let unquoted = match line.as_slice() {
                        [q, inner @ .., q2] if q == q2 && (*q == b'\'' || *q == b'"') => inner,
                        _ => return self.malformed("STRING argument is not quoted"),
                    };
                    let b = unquoted.to_vec();
                    self.push(Node::Bytes(b));
                }

                op::EMPTY_TUPLE => self.push(Node::Tuple(Vec::new())),
                op::TUPLE1 => {
                    let a = self.pop()?;
                    self.push(Node::Tuple(vec![a]));
                }
                op::TUPLE2 => {
                    let b = self.pop()?;
                    let a = self.pop()?;
                    self.push(Node::Tuple(vec![a, b]));
                }
                op::TUPLE3 => {
                    let c = self.pop()?;
                    let b = self.pop()?;
                    let a = self.pop()?;
                    self.push(Node::Tuple(vec![a, b, c]));
                }
                op::TUPLE => {
                    let items = self.pop_mark()?;
                    self.push(Node::Tuple(items));
                }
                op::EMPTY_LIST => self.push(Node::List(Vec::new())),
                op::LIST => {
                    let items = self.pop_mark()?;
                    self.push(Node::List(items));
                }
                op::APPEND => {
                    let item = self.pop()?;
                    let list = self.top()?;
                    self.add_list_items(list, vec![item])?;
                }
                op::APPENDS => {
                    let items = self.pop_mark()?;
                    let list = self.top()?;
                    self.add_list_items(list, items)?;
                }
                op::EMPTY_DICT => self.push(Node::Dict(Vec::new())),
                op::DICT => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    self.push(Node::Dict(pairs));
                }
                op::SETITEM => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    let dict = self.top()?;
                    self.add_dict_items(dict, vec![(key, value)])?;
                }
                op::SETITEMS => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    let dict = self.top()?;
                    self.add_dict_items(dict, pairs)?;
                }
                op::EMPTY_SET => self.push(Node::Set(Vec::new())),
                op::ADDITEMS => {
                    let items = self.pop_mark()?;
                    let set = self.top()?;
                    self.add_set_items(set, items)?;
                }
                op::FROZENSET => {
                    let items = self.pop_mark()?;
                    self.push(Node::Set(items));
                }

                op::BINPUT => {
                    let key = self.u8()?.into();
                    self.memo_put(key)?;
                }
                op::LONG_BINPUT => {
                    let key = self.u32()?.into();
                    self.memo_put(key)?;
                }
                op::PUT => {
                    let text = self.line_str()?;
                    let Ok(key) = text.parse::<u64>() else {
                        return self.malformed(format!("bad memo key {text:?}"));
                    };
                    self.memo_put(key)?;
                }
                op::MEMOIZE => {
                    let key = self.memo.len() as u64;
                    self.memo_put(key)?;
                }
                op::BINGET => {
                    let key = self.u8()?.into();
                    let id = self.memo_get(key)?;
                    self.stack.push(id);
                }
                op::LONG_BINGET => {
                    let key = self.u32()?.into();
                    let id = self.memo_get(key)?;
                    self.stack.push(id);
                }
                op::GET => {
                    let text = self.line_str()?;
                    let Ok(key) = text.parse::<u64>() else {
                        return self.malformed(format!("bad memo key {text:?}"));
                    };
                    let id = self.memo_get(key)?;
                    self.stack.push(id);
                }

                op::GLOBAL => {
                    let module = self.line_str()?;
                    let name = self.line_str()?;
                    self.push(Node::Global { module, name });
                }
                op::STACK_GLOBAL => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Node::Str(module), Node::Str(name)) =
                        (&self.nodes[module], &self.nodes[name])
                    else {
                        return self.malformed("STACK_GLOBAL needs two strings");
                    };
                    let node = Node::Global {
                        module: module.clone(),
                        name: name.clone(),
                    };
                    self.charge_copy(module.len() + name.len())?;
                    self.push(node);
                }
                op::REDUCE => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    self.call(callable, args)?;
                }
                op::NEWOBJ => {
                    let args = self.pop()?;
                    let class = self.pop()?;
                    self.call(class, args)?;
                }
                op::NEWOBJ_EX => {
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let class = self.pop()?;
                    self.call(class, args)?;
                }
                op::OBJ => {
                    let mut items = self.pop_mark()?;
                    if items.is_empty() {
                        return self.malformed("OBJ without a class");
                    }
                    let class = items.remove(0);
                    let args = self.alloc(Node::Tuple(items));
                    self.call(class, args)?;
                }
                op::INST => {
                    let module = self.line_str()?;
                    let name = self.line_str()?;
                    let items = self.pop_mark()?;
                    let class = self.alloc(Node::Global { module, name });
                    let args = self.alloc(Node::Tuple(items));
                    self.call(class, args)?;
                }
                op::BUILD => {
                    let state = self.pop()?;
                    let target = self.top()?;
                    // Dicts (an OrderedDict's `_metadata`) and other built-ins keep no state.
                    if let Node::Call { state: slot, .. } = &mut self.nodes[target] {
                        *slot = Some(state);
                    }
                }
                op::BINPERSID => {
                    let pid = self.pop()?;
                    self.push(Node::Persistent(pid));
                }
                op::PERSID => {
                    let text = self.line_str()?;
                    let pid = self.alloc(Node::Str(text));
                    self.push(Node::Persistent(pid));
                }
                op::READONLY_BUFFER => {
                    self.top()?;
                }
                _ => return Err(PickleError::Unsupported { op: code, pos: at }),
            }
        }
    }
}

impl Node {
    fn call(callable: Id, args: Id) -> Node {
        Node::Call {
            callable,
            args,
            state: None,
            dict_items: Vec::new(),
            list_items: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memo_keeps_identity_of_containers_filled_after_memoisation() {
        // EMPTY_DICT BINPUT 0 'k' 1 SETITEM POP BINGET 0 STOP: the memoised dict is the filled one.
        let data = b"}q\x00X\x01\x00\x00\x00kK\x01s0h\x00.";
        let (p, used) = Pickle::parse(data).unwrap();
        assert_eq!(used, data.len());
        let k = p.dict_get(p.root, "k").unwrap();
        assert_eq!(p.as_int(k), Some(1));
    }

    #[test]
    fn self_referencing_list_parses_without_recursing() {
        // EMPTY_LIST BINPUT 0 BINGET 0 APPEND STOP: a list that contains itself.
        let (p, _) = Pickle::parse(b"]q\x00h\x00a.").unwrap();
        assert_eq!(p.as_seq(p.root), Some(&[p.root][..]));
    }

    #[test]
    fn long_and_negative_integers_decode() {
        // LONG1 with 9 bytes stays opaque; LONG1 0xff (-1); BININT -2.
        let (p, _) = Pickle::parse(
            b"(\x8a\x01\xffJ\xfe\xff\xff\xff\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01t.",
        )
        .unwrap();
        let items = p.as_seq(p.root).unwrap().to_vec();
        assert_eq!(p.as_int(items[0]), Some(-1));
        assert_eq!(p.as_int(items[1]), Some(-2));
        assert!(matches!(p.node(items[2]), Node::BigInt(_)));
    }

    #[test]
    fn stack_underflow_below_a_mark_is_an_error() {
        // MARK then TUPLE1 must not take the item from below the mark.
        let err = Pickle::parse(b"K\x01(\x85.").unwrap_err();
        assert!(err.to_string().contains("stack underflow"), "{err}");
    }

    #[test]
    fn values_copied_over_and_over_are_refused() {
        // A memoised list of 100,000 items made a set 1,000 times: 800 MB of copies from a
        // 200 KB pickle.
        let mut data = b"\x80\x02](".to_vec();
        for _ in 0..100_000 {
            data.extend_from_slice(b"K\x01");
        }
        data.extend_from_slice(b"eq\x00c__builtin__\nset\nq\x01");
        for _ in 0..1000 {
            data.extend_from_slice(b"h\x01h\x00\x85R0");
        }
        data.extend_from_slice(b"N.");
        let err = Pickle::parse(&data).unwrap_err().to_string();
        assert!(err.contains("copies its values over and over"), "{err}");
        // Once is fine.
        let mut once = data[..data.len() - 2 - 1000 * 7].to_vec();
        once.extend_from_slice(b"h\x01h\x00\x85R.");
        assert!(Pickle::parse(&once).is_ok());
    }

    #[test]
    fn huge_length_prefixes_fail_before_allocating() {
        let err = Pickle::parse(b"\x8e\xff\xff\xff\xff\xff\xff\xff\x7f").unwrap_err();
        assert!(matches!(err, PickleError::Truncated(_)), "{err}");
    }
}
