"""Where results go: a window with the overlay, an annotated video, a predictions file.

Every sink has write(frame, prediction, timing, stats) and close(); files are written under a
temporary name and renamed into place by close(), so a crash never leaves half a file behind.
"""
