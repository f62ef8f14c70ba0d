"""The package version, in a module of its own: the workspace and the engines read it without importing the
package root (whose notebook helpers may import IPython)."""
__version__ = "0.1.0"
