//! Unified Social Credit Codes (统一社会信用代码, GB 32100-2015), the ids of
//! agencies and issuers: 18 characters from a 31-symbol alphabet, the last
//! one a check character over the first 17.

/// The code's alphabet: digits and capitals without I, O, S, V and Z.
const ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// Weight of each of the first 17 positions: 3^i mod 31.
const WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

fn value_of(symbol: u8) -> Option<u32> {
    ALPHABET
        .iter()
        .position(|&c| c == symbol)
        .and_then(|i| u32::try_from(i).ok())
}

/// The check character for the first 17 characters of a code, or `None`
/// when `body` is not 17 characters of the alphabet.
pub fn check_character(body: &str) -> Option<char> {
    let bytes = body.as_bytes();
    if bytes.len() != 17 {
        return None;
    }
    let mut sum = 0u32;
    for (&symbol, weight) in bytes.iter().zip(WEIGHTS) {
        sum += value_of(symbol)? * weight;
    }
    let check = (31 - sum % 31) % 31;
    ALPHABET.get(check as usize).map(|&c| char::from(c))
}

/// Whether `code` is a well-formed Unified Social Credit Code with the right check character.
pub fn is_valid(code: &str) -> bool {
    code.len() == 18
        && code.is_char_boundary(17)
        && check_character(&code[..17]).is_some_and(|c| code.as_bytes()[17] == c as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_example_checks() {
        // The example code of the GB 32100-2015 standard text.
        assert!(is_valid("91350100M000100Y43"));
    }

    #[test]
    fn any_changed_character_is_caught() {
        let code = "91350100M000100Y43";
        for i in 0..18 {
            for &c in ALPHABET {
                if code.as_bytes()[i] == c {
                    continue;
                }
                let mut bytes = code.as_bytes().to_vec();
                bytes[i] = c;
                let changed = String::from_utf8(bytes).unwrap();
                assert!(!is_valid(&changed), "{changed} should not check");
            }
        }
    }

    #[test]
    fn refuses_wrong_shapes() {
        for bad in [
            "",
            "91350100M000100Y4",
            "91350100M000100Y433",
            "91350100M000100I43",
            "9135010OM000100Y43",
            "一二三四五六",
        ] {
            assert!(!is_valid(bad), "{bad}");
        }
    }
}
