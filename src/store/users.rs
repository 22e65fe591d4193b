//! Users who log in with AUTHINFO (RFC 4643): names and argon2 hashes.

use super::{Result, Store, StoreError};

impl Store {
    /// The stored hash of `name`, if there is such a user.
    pub async fn user_hash(&self, name: &str) -> Result<Option<String>> {
        let hash = sqlx::query_scalar("SELECT hash FROM users WHERE name = ?1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(hash)
    }

    /// Adds a user; `UserExists` when the name is taken.
    pub async fn add_user(&self, name: &str, hash: &str) -> Result<()> {
        let done = sqlx::query(
            "INSERT INTO users (name, hash, created) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(hash)
        .bind(chrono::Utc::now().timestamp())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::UserExists(name.to_owned()));
        }
        Ok(())
    }

    /// Replaces a user's hash; `NoSuchUser` when there is none.
    pub async fn set_user_hash(&self, name: &str, hash: &str) -> Result<()> {
        let done = sqlx::query("UPDATE users SET hash = ?2 WHERE name = ?1")
            .bind(name)
            .bind(hash)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NoSuchUser(name.to_owned()));
        }
        Ok(())
    }

    pub async fn remove_user(&self, name: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM users WHERE name = ?1")
            .bind(name)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NoSuchUser(name.to_owned()));
        }
        Ok(())
    }

    /// (name, created) of every user, by name.
    pub async fn users(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query_as("SELECT name, created FROM users ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows)
    }
}
