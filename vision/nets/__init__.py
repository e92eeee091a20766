"""lineguard's networks: small Keras 3 models trained from scratch, sized for CPU inference next to the line.

``vision.nets.build`` builds and loads them (it imports Keras); ``vision.nets.targets`` turns labels into
training targets (NumPy only). Importing this package itself imports neither.
"""
