"""
The ConnectyCube-compatible REST side-service (reference/connectycube-sdk.md
§4): one module per collection, assembled by L{xmppchat.api.site}.
"""


def collections(ctx):
    """
    C{(path, resource class)} for every collection; C{chat/...} paths hang
    below C{/chat}.
    """
    from xmppchat.api.sessions import LoginResource, SessionResource
    from xmppchat.api.data import DataResource
    from xmppchat.api.dialogs import DialogsResource
    from xmppchat.api.messages import MessagesResource, SearchResource
    from xmppchat.api.storage import BlobsResource
    from xmppchat.api.users import UsersResource

    out = [
        ("session", SessionResource),
        ("login", LoginResource),
        ("users", UsersResource),
        ("chat/Dialog", DialogsResource),
        ("chat/Message", MessagesResource),
        ("chat/search", SearchResource),
        ("blobs", BlobsResource),
        ("data", DataResource),
    ]
    return out
