"""
The Docker backend's parts; :mod:`cleanroom.kinds.docker` is its public face.
"""
