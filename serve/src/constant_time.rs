//! Secrets compared in constant time: how long a comparison takes does not tell how much of a
//! guess was right (tokens, CSRF tokens).

/// Whether `presented` is `expected`.
pub fn same(expected: &[u8], presented: &[u8]) -> bool {
    let mut difference = expected.len() ^ presented.len();
    for (at, byte) in expected.iter().enumerate() {
        difference |= usize::from(byte ^ presented.get(at).copied().unwrap_or(!*byte));
    }
    difference == 0
}
