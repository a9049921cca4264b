//! The uwsgi encoder and decoder: arbitrary environ pairs must encode
//! within the limit or be refused, and decode back to the same pairs;
//! arbitrary bytes must decode to a value or an error.
#![no_main]
use fedgate::internal::uwsgi::frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = frame::decode(data);
    // Interpret the input as pairs separated by 0xff bytes.
    let parts: Vec<&[u8]> = data.split(|&b| b == 0xff).collect();
    let env: Vec<(Vec<u8>, Vec<u8>)> = parts.chunks(2).map(|c| (c[0].to_vec(), c.get(1).unwrap_or(&&b""[..]).to_vec())).collect();
    match frame::encode(&env) {
        Ok(bytes) => {
            let (back, used) = frame::decode(&bytes).expect("own encoding decodes");
            assert_eq!(used, bytes.len());
            assert_eq!(back, env);
        }
        Err(frame::FrameError::TooLarge(n)) => assert!(n > frame::MAX_VARS || env.iter().any(|(k, v)| k.len() > frame::MAX_VARS || v.len() > frame::MAX_VARS)),
        Err(e) => panic!("unexpected encode error {e}"),
    }
});
