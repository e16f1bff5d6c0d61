"""Makes the JPEG 2000 ID photos in this folder from a testdata photo (face_recognition, MIT).

An ICAO-style head-and-shoulders crop of identities/fr_obama/obama.jpg, scaled to 300x400 and
compressed lossily (irreversible 9/7 wavelet) at 20:1 by OpenJPEG through Pillow:
  obama_id.jp2         RGB, 8 bits, JP2 file
  obama_id_grey16.j2k  greyscale widened to 16 bits (v * 257), raw J2K codestream

Run from testdata/ with Pillow installed (made with Pillow 13.0.0, OpenJPEG 2.5.4):
  python jpeg2000/make_id_photos.py
"""

from PIL import Image

CROP = (258, 0, 738, 640)  # 480x640 (3:4): the head is about 60% of the height
SIZE = (300, 400)

photo = Image.open("identities/fr_obama/obama.jpg").convert("RGB").crop(CROP).resize(SIZE, Image.LANCZOS)
lossy = {"quality_mode": "rates", "quality_layers": [20], "irreversible": True}
photo.save("jpeg2000/obama_id.jp2", **lossy)

grey = photo.convert("L")
grey16 = Image.new("I;16", grey.size)
grey16.putdata([v * 257 for v in grey.get_flattened_data()])
grey16.save("jpeg2000/obama_id_grey16.j2k", **lossy)
