"""Web: the Gradio chat (app), its handlers (the one place errors become messages) and the page's HTML (page).

The browser-facing layer over exorag.ask and exorag.output; it binds to 127.0.0.1 unless told otherwise.
"""
