"""The offline basemap shipped with the console: built once by `python -m geo.basemap.build`."""
