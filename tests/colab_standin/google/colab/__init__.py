"""A stand-in for the ``google.colab`` module, for tests only.

It stands in for Google Colab, which CI cannot reach: the tests put this folder on the
PYTHONPATH of a real Jupyter kernel (or of the test process) so sessionkit takes its
Colab branch. It does what sessionkit relies on Colab for, and nothing else, with the
real modules' names and exception classes (colabtools ``google/colab/``):

- ``auth.authenticate_user()`` sets up application default credentials, as Colab does,
  for the account named by ``SESSIONKIT_COLAB_STANDIN_USER`` (a JSON file of
  user credentials the Drive emulator issued); ``SESSIONKIT_COLAB_STANDIN_AUTH`` makes it
  behave as the real one does when things go wrong: ``no-browser`` (it waits for the page
  for ever, as ``blocking_request(..., timeout_sec=None)`` does), ``message-error`` (the
  page answers an error: ``_message.MessageError``, colabtools#5515), ``refused``
  (``errors.AuthorizationError``);
- ``userdata.get(NAME)`` reads Colab's secrets from the JSON file named by
  ``SESSIONKIT_COLAB_STANDIN_SECRETS`` (``{NAME: {"value": ..., "access": true}}``) and
  raises what the real one raises for a missing secret or one without notebook access;
- ``runtime.unassign()`` records that the runtime was released (a file named by
  ``SESSIONKIT_COLAB_STANDIN_UNASSIGNED``) instead of ending the VM; without that
  variable it raises ``errors.RuntimeManagementError`` as the real one does outside a
  managed runtime ("Unable to find the runtime management service.").
"""
