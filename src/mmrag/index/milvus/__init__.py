"""The store on a Milvus server (the `scale` extra): `MilvusStore`, opened for milvus:// URIs.

pymilvus is imported only when a store is opened, so importing this package costs no
more than the embedded store's modules.
"""

from mmrag.index.milvus.store import DEFAULT_DENSE_INDEX, MilvusStore

__all__ = ["DEFAULT_DENSE_INDEX", "MilvusStore"]
