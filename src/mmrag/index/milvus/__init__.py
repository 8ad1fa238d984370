"""The store on a Milvus server (the `scale` extra): `MilvusStore`, opened for milvus:// URIs.

Documents, their vectors (one column per vector field) and the BM25 input live in one
collection; source content hashes in a second; schema metadata in a third (see
`schema.py`). Text is analysed by mmrag's own `Analyzer` and the resulting terms are
fed to Milvus's BM25 function, so the vocabulary (stemming, stopwords, CJK segmentation)
is the embedded store's, whichever tokenizers the server offers.

One idea per file: store.py (MilvusStore: opening, fields, writes and reads of the Store
interface), client.py (the connection: retries, read consistency), schema.py (what a
server can do, the collections' schemas), rows.py (documents as rows and back),
search.py (sparse, dense and hybrid search requests), filters.py (metadata filters as
Milvus expressions) and blobs.py (the media folder). pymilvus is imported only when it
is used (a store opened, a schema or hybrid search built), never by importing the package.
"""

from mmrag.index.milvus.store import DEFAULT_DENSE_INDEX, MilvusStore

__all__ = ["DEFAULT_DENSE_INDEX", "MilvusStore"]
