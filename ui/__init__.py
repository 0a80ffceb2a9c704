"""Dashboard helpers shared by app.py and pages/: typed state, sidebar, cache wrappers, widgets.

Only this package (and the pages) import streamlit; ``tlviz`` never does.
"""
