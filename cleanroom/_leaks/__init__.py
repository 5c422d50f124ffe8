"""
Leak detection's parts: one module per thing a block of code can leave behind,
the records they report, and the check that brackets a block. The public face
is :mod:`cleanroom.leaks`.
"""
