"""A stand-in for the ``google.colab`` module, for tests only.

It stands in for Google Colab, which CI cannot reach: the tests put this folder on the
PYTHONPATH of a real Jupyter kernel so the notebooks take their Colab branch. It does
what sessionkit relies on Colab for, and nothing else:

- ``auth.authenticate_user()`` sets up application default credentials, as Colab does,
  for the account named by ``SESSIONKIT_COLAB_STANDIN_USER`` (a JSON file of
  user credentials the Drive emulator issued);
- ``runtime.unassign()`` records that the runtime was released (a file named by
  ``SESSIONKIT_COLAB_STANDIN_UNASSIGNED``) instead of ending the VM.
"""
