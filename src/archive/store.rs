//! The object store behind an archive URL, with the few operations the archive uses.
//!
//! `s3://bucket/prefix` reads endpoint, region and credentials from the standard AWS
//! variables (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_ALLOW_HTTP=true` for a plain-HTTP endpoint); `file:///path` is a directory (another
//! mount). Requests time out (30 s) and are retried by object_store's own backoff.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

use super::error::ArchiveError;
use super::layout::Layout;

/// An opened archive: the store and the names under its prefix.
#[derive(Clone)]
pub struct Archive {
    store: Arc<dyn ObjectStore>,
    pub layout: Layout,
    pub url: String,
    /// S3 can replace an object only if its ETag still matches; a local directory cannot.
    atomic_update: bool,
}

/// One object as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub size: u64,
}

/// What a conditional create found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    Yes,
    AlreadyThere,
}

impl Archive {
    pub fn open(url: &str) -> Result<Archive, ArchiveError> {
        let bad = |why: &str| ArchiveError::BadUrl {
            url: url.to_string(),
            why: why.to_string(),
        };
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket"));
            }
            install_tls_provider();
            let client = object_store::ClientOptions::new()
                .with_timeout(std::time::Duration::from_secs(30))
                .with_connect_timeout(std::time::Duration::from_secs(5));
            // Client options first: the AWS_* variables (AWS_ALLOW_HTTP among them) are
            // client options too, and setting the options afterwards would drop them.
            let mut b = object_store::aws::AmazonS3Builder::new().with_client_options(client);
            for (k, v) in std::env::vars_os() {
                let (Some(k), Some(v)) = (k.to_str(), v.to_str()) else {
                    continue; // not UTF-8: not one of the AWS settings
                };
                if !k.starts_with("AWS_") {
                    continue;
                }
                if let Ok(key) = k
                    .to_ascii_lowercase()
                    .parse::<object_store::aws::AmazonS3ConfigKey>()
                {
                    b = b.with_config(key, v);
                }
            }
            // Few quick retries: the shipper retries on its own with a growing pause and
            // reports the failure meanwhile, instead of hanging in one request for minutes.
            let retry = object_store::RetryConfig {
                max_retries: 2,
                retry_timeout: std::time::Duration::from_secs(10),
                ..Default::default()
            };
            let store = b
                .with_retry(retry)
                .with_bucket_name(bucket)
                .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch)
                .build()
                .map_err(|e| bad(&e.to_string()))?;
            Ok(Archive {
                store: Arc::new(store),
                layout: Layout::new(prefix),
                url: url.to_string(),
                atomic_update: true,
            })
        } else if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(bad("a file:// URL needs an absolute path (file:///dir)"));
            }
            std::fs::create_dir_all(path).map_err(|e| bad(&e.to_string()))?;
            let store = object_store::local::LocalFileSystem::new_with_prefix(path)
                .map_err(|e| bad(&e.to_string()))?;
            Ok(Archive {
                store: Arc::new(store),
                layout: Layout::new(""),
                url: url.to_string(),
                atomic_update: false,
            })
        } else {
            Err(bad("unknown scheme"))
        }
    }

    /// Writes `name` only if no object has that name.
    pub async fn create(&self, name: &str, data: Bytes) -> Result<Created, ArchiveError> {
        self.create_pieces(name, vec![data]).await
    }

    /// [`Archive::create`] of the concatenation of `pieces` (sent without joining them).
    pub async fn create_pieces(
        &self,
        name: &str,
        pieces: Vec<Bytes>,
    ) -> Result<Created, ArchiveError> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&ObjPath::from(name), PutPayload::from_iter(pieces), opts)
            .await
        {
            Ok(_) => Ok(Created::Yes),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(Created::AlreadyThere),
            Err(e) => Err(ArchiveError::store("PUT", name, e)),
        }
    }

    /// Writes a large object from a file in parts, without holding it in memory.
    pub async fn upload_file(
        &self,
        name: &str,
        path: &std::path::Path,
    ) -> Result<u64, ArchiveError> {
        use tokio::io::AsyncReadExt;
        const PART: usize = 16 << 20;
        let mut f = tokio::fs::File::open(path)
            .await
            .map_err(|e| ArchiveError::io(path, e))?;
        let len = f
            .metadata()
            .await
            .map_err(|e| ArchiveError::io(path, e))?
            .len();
        if len <= PART as u64 {
            let mut buf = Vec::with_capacity(len as usize);
            f.read_to_end(&mut buf)
                .await
                .map_err(|e| ArchiveError::io(path, e))?;
            self.create(name, Bytes::from(buf)).await?;
            return Ok(len);
        }
        let obj = ObjPath::from(name);
        let upload = self
            .store
            .put_multipart(&obj)
            .await
            .map_err(|e| ArchiveError::store("PUT (multipart)", name, e))?;
        let mut w = object_store::WriteMultipart::new_with_chunk_size(upload, PART);
        let mut buf = vec![0u8; PART];
        let mut failed = None;
        loop {
            let n = match f.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    failed = Some(ArchiveError::io(path, e));
                    break;
                }
            };
            if n == 0 {
                break;
            }
            if let Err(e) = w.wait_for_capacity(4).await {
                failed = Some(ArchiveError::store("PUT (multipart)", name, e));
                break;
            }
            w.write(&buf[..n]);
        }
        if let Some(e) = failed {
            // An upload left open costs storage until the bucket's lifecycle rules end it.
            let _ = w.abort().await;
            return Err(e);
        }
        w.finish()
            .await
            .map_err(|e| ArchiveError::store("PUT (multipart)", name, e))?;
        Ok(len)
    }

    /// Streams an object into a new file at `path` without holding it in memory, adding each
    /// chunk's length to `done`; returns its length.
    pub async fn get_to_file(
        &self,
        name: &str,
        path: &std::path::Path,
        done: &std::sync::atomic::AtomicU64,
    ) -> Result<u64, ArchiveError> {
        use std::io::Write;
        let r = self
            .store
            .get(&ObjPath::from(name))
            .await
            .map_err(|e| ArchiveError::store("GET", name, e))?;
        let mut f = std::fs::File::create(path).map_err(|e| ArchiveError::io(path, e))?;
        let mut stream = r.into_stream();
        let mut len = 0u64;
        while let Some(chunk) = stream
            .try_next()
            .await
            .map_err(|e| ArchiveError::store("GET", name, e))?
        {
            f.write_all(&chunk).map_err(|e| ArchiveError::io(path, e))?;
            len += chunk.len() as u64;
            done.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(len)
    }

    pub async fn get(&self, name: &str) -> Result<Bytes, ArchiveError> {
        let r = self
            .store
            .get(&ObjPath::from(name))
            .await
            .map_err(|e| ArchiveError::store("GET", name, e))?;
        r.bytes()
            .await
            .map_err(|e| ArchiveError::store("GET", name, e))
    }

    /// Bytes `range` of an object.
    pub async fn get_range(
        &self,
        name: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes, ArchiveError> {
        self.store
            .get_range(&ObjPath::from(name), range)
            .await
            .map_err(|e| ArchiveError::store("GET", name, e))
    }

    /// The object and its version tag, or `None` when there is none.
    pub async fn get_versioned(
        &self,
        name: &str,
    ) -> Result<Option<(Bytes, UpdateVersion)>, ArchiveError> {
        let r = match self.store.get(&ObjPath::from(name)).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(ArchiveError::store("GET", name, e)),
        };
        let version = UpdateVersion {
            e_tag: r.meta.e_tag.clone(),
            version: r.meta.version.clone(),
        };
        let b = r
            .bytes()
            .await
            .map_err(|e| ArchiveError::store("GET", name, e))?;
        Ok(Some((b, version)))
    }

    /// Replaces `name` if it is still at `version` (S3: If-Match). A local directory has no
    /// atomic compare-and-swap: there the object is overwritten.
    pub async fn replace(
        &self,
        name: &str,
        data: Bytes,
        version: UpdateVersion,
    ) -> Result<bool, ArchiveError> {
        let mode = if self.atomic_update {
            PutMode::Update(version)
        } else {
            PutMode::Overwrite
        };
        let opts = PutOptions {
            mode,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&ObjPath::from(name), PutPayload::from_bytes(data), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(ArchiveError::store("PUT", name, e)),
        }
    }

    /// Every object under `prefix` (a directory-like name without the trailing slash).
    pub async fn list(&self, prefix: &str) -> Result<Vec<Listed>, ArchiveError> {
        let p = ObjPath::from(prefix);
        let metas: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&p))
            .try_collect()
            .await
            .map_err(|e| ArchiveError::store("LIST", prefix, e))?;
        let mut out: Vec<Listed> = metas
            .into_iter()
            .map(|m| Listed {
                name: m.location.to_string(),
                size: m.size,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub async fn delete(&self, name: &str) -> Result<(), ArchiveError> {
        match self.store.delete(&ObjPath::from(name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(ArchiveError::store("DELETE", name, e)),
        }
    }
}

/// reqwest is built without a TLS provider of its own: rustls uses ring, as the rest of the
/// server does. Installing twice is harmless.
fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
