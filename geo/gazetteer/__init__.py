"""Address lookup: an offline gazetteer behind geopy's Geocoder interface, or any geopy provider."""
