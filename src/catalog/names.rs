//! Table names follow DynamoDB's rule, so names work through either front door.

pub const MIN_NAME_LEN: usize = 3;
pub const MAX_NAME_LEN: usize = 255;

/// 3 to 255 characters of `a-z A-Z 0-9 _ - .`.
pub fn validate_table_name(name: &[u8]) -> Result<&str, String> {
    let shown = String::from_utf8_lossy(name);
    if name.len() < MIN_NAME_LEN || name.len() > MAX_NAME_LEN {
        return Err(format!(
            "invalid table name '{shown}': must be {MIN_NAME_LEN} to {MAX_NAME_LEN} characters"
        ));
    }
    if !name
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        return Err(format!(
            "invalid table name '{shown}': only letters, digits, '_', '-' and '.' are allowed"
        ));
    }
    Ok(std::str::from_utf8(name).expect("ascii"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_table_name(b"default").is_ok());
        assert!(validate_table_name(b"orders_2026-11.v2").is_ok());
        assert!(validate_table_name(b"ab").is_err());
        assert!(validate_table_name(&[b'a'; 256]).is_err());
        assert!(validate_table_name(b"has space").is_err());
        assert!(validate_table_name(b"sl/ash").is_err());
    }
}
